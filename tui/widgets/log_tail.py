"""The run's story as it is told: log lines, warnings with hints, checkpoints, the ending."""

from __future__ import annotations

from rich.text import Text

from engine import events as ev
from engine.i18n import _
from tui.widgets.wrapped_log import WrappedLog
from tui.wording import describe


class LogTail(WrappedLog):
    """The last few hundred lines, worded as `stillroom attach` words them (one source);
    wrapped at the width, or (w on the Train step) whole and scrolled sideways for a
    traceback."""

    DEFAULT_CSS = """
    LogTail {
        height: 1fr;
        min-height: 3;
        border: round $panel-lighten-2;
        border-title-color: $text-muted;
        background: $surface;
        scrollbar-size-vertical: 1;
    }
    LogTail:focus {
        border: round $accent;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(max_lines=400, id=id)
        self.border_title = _("log")

    def add(self, event: ev.Event) -> None:
        """Write the event's line, if it has one worth keeping."""
        line = describe(event)
        if line is not None:
            self.say(Text.from_markup(line))

    def toggle_wrap(self) -> None:
        super().toggle_wrap()
        self.border_title = _("log") if self.wrap else _("log (unwrapped: ← → scroll)")
