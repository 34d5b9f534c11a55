"""Loss against step as a braille line, with the learning rate schedule drawn beneath it.

Drawn here rather than with a plotting library: two series on a small grid
need no dependency, and the chart must redraw cheaply at every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.text import Text
from textual.widget import Widget

from engine.i18n import _

# Braille dot bits by (column within cell, row within cell).
DOTS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
AXIS_WIDTH = 7


@dataclass(frozen=True)
class Point:
    step: int
    loss: float
    lr: float | None


def _label(value: float) -> str:
    return f"{value:.3g}".rjust(AXIS_WIDTH - 1)[: AXIS_WIDTH - 1]


class LossChart(Widget):
    """Every logged loss (none dropped), scaled to the widget; lr on its own 0..max scale."""

    DEFAULT_CSS = """
    LossChart {
        height: 1fr;
        min-height: 5;
        border: round $panel-lighten-2;
        border-title-color: $text-primary;
        border-subtitle-color: $text-warning;
    }
    LossChart > .loss-chart--loss { color: $text-primary; }
    LossChart > .loss-chart--lr { color: $text-warning; }
    LossChart > .loss-chart--axis { color: $text-muted; }
    """
    COMPONENT_CLASSES = {"loss-chart--loss", "loss-chart--lr", "loss-chart--axis"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.points: list[Point] = []
        self.max_steps = 0
        self.border_title = _("loss")

    def clear(self) -> None:
        self.points, self.max_steps = [], 0
        self.border_title, self.border_subtitle = _("loss"), ""
        self.refresh()

    def add(self, step: int, loss: float | None, lr: float | None, max_steps: int) -> None:
        """One logged step; a missing or non-finite loss is not a point (lr still shown)."""
        self.max_steps = max(self.max_steps, max_steps)
        if loss is not None and math.isfinite(loss):
            self.points.append(Point(step, loss, lr))
            low = min(p.loss for p in self.points)
            self.border_title = _("loss {loss} (lowest {low})").format(
                loss=f"{loss:.4f}", low=f"{low:.4f}"
            )
        if lr is not None:
            self.border_subtitle = f"lr {lr:.1e}"
        self.refresh()

    def render(self) -> Text:
        style = self.get_component_rich_style
        axis = style("loss-chart--axis", partial=True)
        width, height = self.size.width - AXIS_WIDTH, self.size.height
        if not self.points or width < 4 or height < 2:
            return Text(_("The loss appears here from the first logged step."), style=axis)
        rows, cols = height * 4, width * 2
        losses = [p.loss for p in self.points]
        low, high = min(losses), max(losses)
        span = (high - low) or 1.0
        last_step = max(self.max_steps, self.points[-1].step, 2)
        top_lr = max((p.lr or 0.0) for p in self.points) or 1.0
        loss_cells: dict[tuple[int, int], int] = {}
        lr_cells: dict[tuple[int, int], int] = {}

        def line(cells: dict[tuple[int, int], int], start: tuple[int, int] | None,
                 end: tuple[int, int]) -> None:  # fmt: skip
            """Dots from ``start`` to ``end``: each dot column filled up to the next one's y."""
            x0, y0 = start or end
            x1, y1 = end
            for x in range(x0, x1 + 1):
                y_next = y1 if x == x1 else round(y0 + (y1 - y0) * (x + 1 - x0) / (x1 - x0))
                y_here = y0 if x == x0 else round(y0 + (y1 - y0) * (x - x0) / (x1 - x0))
                for y in range(min(y_here, y_next), max(y_here, y_next) + 1):
                    key = (y // 4, x // 2)
                    cells[key] = cells.get(key, 0) | DOTS[x % 2][y % 4]

        last_loss: tuple[int, int] | None = None
        last_lr: tuple[int, int] | None = None
        for point in self.points:
            x = min(cols - 1, round((point.step - 1) / (last_step - 1) * (cols - 1)))
            y = round((high - point.loss) / span * (rows - 1))
            line(loss_cells, last_loss, (x, y))
            last_loss = (x, y)
            if point.lr is not None:
                y_lr = round((1 - point.lr / top_lr) * (rows - 1))
                line(lr_cells, last_lr, (x, y_lr))
                last_lr = (x, y_lr)
        loss_style = style("loss-chart--loss", partial=True)
        lr_style = style("loss-chart--lr", partial=True)
        text = Text(no_wrap=True)
        for row in range(height):
            label = _label(high) if row == 0 else _label(low) if row == height - 1 else ""
            text.append(f"{label:>{AXIS_WIDTH - 1}}┤", style=axis)
            run, run_is_loss = "", True
            for col in range(width):  # one append per run of a colour, not per cell
                loss_bits = loss_cells.get((row, col), 0)
                is_loss = bool(loss_bits) or not lr_cells.get((row, col))
                if is_loss != run_is_loss and run:
                    text.append(run, style=loss_style if run_is_loss else lr_style)
                    run = ""
                run_is_loss = is_loss
                run += chr(0x2800 + (loss_bits | lr_cells.get((row, col), 0)))
            text.append(run, style=loss_style if run_is_loss else lr_style)
            if row < height - 1:
                text.append("\n")
        return text
