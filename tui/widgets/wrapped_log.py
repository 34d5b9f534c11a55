"""A log whose lines wrap at the width it has now, or show whole and scroll sideways."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.events import Resize
from textual.widgets import RichLog


class WrappedLog(RichLog):
    """Keeps what it was told, so a new width (or ``toggle_wrap``) lays every line out again.

    RichLog wraps a line once, when written, and never narrower than ``min_width`` (78 by
    default: wider than an 80-column window's log, so lines were cut at its edge).
    """

    def __init__(self, *, max_lines: int, id: str | None = None) -> None:
        super().__init__(max_lines=max_lines, min_width=1, wrap=True, markup=False, id=id)
        self.said: deque[Text] = deque(maxlen=max_lines)
        self._laid_out_width = 0

    def say(self, text: Text) -> None:
        self.said.append(text)
        self.write(text)

    def clear(self) -> WrappedLog:
        self.said.clear()
        super().clear()
        return self

    def toggle_wrap(self) -> None:
        self.wrap = not self.wrap
        self._lay_out_again()

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
