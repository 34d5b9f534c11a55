"""Rows per token length, with the bins past ``max_seq_length`` marked."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from engine.i18n import _

BAR = "█"


class Histogram(Widget):
    """Horizontal bars, one per length bin; bins longer than the limit in the error colour."""

    DEFAULT_CSS = """
    Histogram {
        height: auto;
        padding: 0 1;
    }
    Histogram > .histogram--over {
        color: $text-error;
    }
    Histogram > .histogram--bar {
        color: $text-accent;
    }
    """
    COMPONENT_CLASSES = {"histogram--over", "histogram--bar"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.bins: list[tuple[int, int, int]] = []
        self.limit = 0

    def show(self, bins: list[tuple[int, int, int]], limit: int) -> None:
        self.bins, self.limit = bins, limit
        self.refresh(layout=True)

    def get_content_height(self, container, viewport, width: int) -> int:  # type: ignore[override]
        return max(1, len(self.bins) + 1)

    def render(self) -> Text:
        if not self.bins:
            return Text(_("No token lengths yet."), style="dim")
        label_width = len(f"{self.bins[-1][1]}") * 2 + 1
        count_width = len(str(max(n for _, _, n in self.bins)))
        room = max(1, self.size.width - label_width - count_width - 3)
        most = max(n for _, _, n in self.bins) or 1
        over = self.get_component_rich_style("histogram--over", partial=True)
        bar = self.get_component_rich_style("histogram--bar", partial=True)
        text = Text(no_wrap=True)
        for low, high, rows in self.bins:
            label = f"{low}-{high}".rjust(label_width)
            length = round(rows / most * room) or (1 if rows else 0)
            text.append(f"{label} ")
            text.append(BAR * length, style=over if low > self.limit else bar)
            text.append(f" {rows}\n")
        text.append(
            _("max_seq_length {limit}: longer rows in red").format(limit=self.limit), style="dim"
        )
        return text
