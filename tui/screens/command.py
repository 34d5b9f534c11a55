""" "Show as command": the headless command lines and plan file for what is on screen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from engine.i18n import N_, _
from tui.replay import as_shell, step_commands
from tui.widgets.footer import Footer

if TYPE_CHECKING:
    from tui.app import StillroomApp


class CommandScreen(ModalScreen[None]):
    """The ``stillroom`` commands for a step and the draft plan they read."""

    DEFAULT_CSS = """
    CommandScreen {
        align: center middle;
    }
    CommandScreen > VerticalScroll {
        width: 100%;
        max-width: 110;
        height: auto;
        max-height: 100%;
        border: round $accent;
        padding: 0 1;
        background: $surface;
    }
    CommandScreen .title {
        text-style: bold;
    }
    CommandScreen #commands {
        color: $text-success;
        margin: 0 0 1 0;
    }
    CommandScreen #plan {
        color: $text-muted;
    }
    """

    BINDINGS = [
        Binding("escape,q", "dismiss", N_("Close")),
        Binding("c", "copy", N_("Copy commands")),
    ]

    app: StillroomApp  # type: ignore[assignment]

    def __init__(self, step: str, *, note: str) -> None:
        super().__init__()
        self.step = step
        self.note = note

    @property
    def commands(self) -> str:
        return as_shell(step_commands(self.app.plan, self.app.plan_path, self.step))

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self.note, classes="title")
            yield Static(self.commands, id="commands", markup=False)
            yield Static(
                _("{path} (only what differs from the defaults):").format(path=self.app.plan_path)
            )
            yield Static(
                self.app.plan.to_toml(only_changes=True) or _("(all defaults)"),
                id="plan",
                markup=False,
            )
        yield Footer(compact=True)

    def action_copy(self) -> None:
        """Copy through the terminal (OSC 52), which also works over SSH in most terminals."""
        self.app.copy_to_clipboard(self.commands)
        self.notify(_("Commands copied to the clipboard."))
