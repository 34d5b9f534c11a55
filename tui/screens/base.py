"""What every wizard step screen shares: the step bar, knobs bound to plan keys, the footer."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Input, Select

from tui.widgets.footer import Footer
from tui.widgets.knob import Knob
from tui.widgets.step_bar import StepBar
from tui.worker_errors import ForwardsWorkerErrors

if TYPE_CHECKING:
    from tui.app import StillroomApp


class StepScreen(ForwardsWorkerErrors, Screen[None]):
    """A wizard step. Knobs write their plan key on every change; ``problems`` gates Next."""

    STEP: ClassVar[str]
    # The first setting, not the scrolling body, so typing goes straight into a field.
    AUTO_FOCUS = "Knob Input, Knob Select"

    app: StillroomApp  # type: ignore[assignment]

    def compose(self) -> ComposeResult:
        yield StepBar(self.STEP)
        with VerticalScroll(id="body"):
            yield from self.compose_body()
        yield Footer(compact=True)

    def compose_body(self) -> ComposeResult:
        yield from ()

    def problems(self) -> list[str]:
        """What must be fixed before the next step, one line each, saying what to do."""
        return []

    def on_screen_resume(self) -> None:
        self.app.arrived(self.STEP)
        self.show_plan()

    def show_plan(self) -> None:
        """Put the plan's values in every knob, without echoing them back as changes."""
        with self.prevent(Input.Changed, Select.Changed):
            for knob in self.query(Knob):
                knob.show(self.app.value_of(knob.key))
                knob.explain()

    def plan_changed(self, key: str) -> None:
        """A knob's key took a new valid value (hook for screens that react)."""

    @on(Input.Changed)
    @on(Select.Changed)
    def _knob_changed(self, event: Input.Changed | Select.Changed) -> None:
        knob = event.control.parent
        if not isinstance(knob, Knob):
            return
        event.stop()
        before = self.app.value_of(knob.key)
        error = self.app.change_key(knob.key, knob.value)
        knob.explain(error)
        if error is None and self.app.value_of(knob.key) != before:
            self.plan_changed(knob.key)
