"""The run's story as it is told: log lines, warnings with hints, checkpoints, the ending."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.events import Resize
from textual.widgets import RichLog

from engine import events as ev
from tui.follow import describe

MAX_LINES = 400


class LogTail(RichLog):
    """The last few hundred lines, worded as `stillroom attach` words them (one source).

    Wrapped by default, and wrapped again whenever the width changes (RichLog wraps a line
    once, when written, so a narrowed window would cut it mid-word); ``wrap = False`` shows
    lines whole, scrolled sideways (a traceback reads better so).
    """

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
        # min_width: RichLog's default (78) renders every line 78 wide, cut by an 80-column
        # window's border and scrollbar.
        super().__init__(max_lines=MAX_LINES, min_width=1, wrap=True, markup=False, id=id)
        self.said: deque[Text] = deque(maxlen=MAX_LINES)
        self._laid_out_width = 0
        self._show_mode()

    def add(self, event: ev.Event) -> None:
        """Write the event's line, if it has one worth keeping."""
        line = describe(event)
        if line is not None:
            text = Text.from_markup(line)
            self.said.append(text)
            self.write(text)

    def clear(self) -> LogTail:
        self.said.clear()
        super().clear()
        return self

    def toggle_wrap(self) -> None:
        self.wrap = not self.wrap
        self._show_mode()
        self._lay_out_again()

    def _show_mode(self) -> None:
        self.border_title = "log" if self.wrap else "log (unwrapped: ← → scroll)"

    def on_resize(self, event: Resize) -> None:
        super().on_resize(event)
        width = event.size.width
        if self._laid_out_width and width != self._laid_out_width and self.wrap:
            self._lay_out_again()
        self._laid_out_width = width

    def _lay_out_again(self) -> None:
        """Write every kept line again at the current width and wrap mode."""
        at_end = self.is_vertical_scroll_end
        super().clear()
        for text in self.said:
            self.write(text, scroll_end=False)
        if at_end:
            self.scroll_end(animate=False)
