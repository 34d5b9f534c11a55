"""The row of wizard steps at the top of every step screen."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from engine.i18n import _
from tui.steps import STEPS


class StepBar(Widget):
    """Teacher › Data › Student › Train › Chat, the current one lit, later ones marked."""

    DEFAULT_CSS = """
    StepBar {
        height: 1;
        width: 1fr;
        background: $panel;
        padding: 0 1;
    }
    """

    current: reactive[str] = reactive("teacher")

    def __init__(self, current: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.set_reactive(StepBar.current, current)

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        for number, step in enumerate(STEPS, start=1):
            if number > 1:
                text.append(" › ", style="dim")
            label = f"{number} {_(step.title)}"
            if step.name == self.current:
                text.append(f" {label} ", style="bold reverse")
            elif step.later:
                text.append(_("{step} (soon)").format(step=label), style="dim italic")
            else:
                text.append(label)
        return text
