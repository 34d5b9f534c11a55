"""The GPU as training sees it: memory used of total, ours against other processes', load."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from engine.events import GpuSample
from engine.i18n import N_, _

NO_GPU = N_("no NVIDIA GPU: training on CPU")


def _gb(mb: float) -> str:
    return f"{mb / 1024:.1f}"


class GpuPanel(Widget):
    """Two lines: a memory bar split into this run / others / free, then the readings.

    "This run" is memory held by the training child and its descendants (NVML's
    process list, ``own`` flag); "others" is everything else in use, so a
    neighbour on a shared card is visible before it causes an out-of-memory.
    """

    DEFAULT_CSS = """
    GpuPanel {
        height: 2;
    }
    GpuPanel > .gpu-panel--own { color: $text-accent; }
    GpuPanel > .gpu-panel--others { color: $text-warning; }
    GpuPanel > .gpu-panel--free { color: $text-muted; }
    GpuPanel > .gpu-panel--quiet { color: $text-muted; }
    """
    COMPONENT_CLASSES = {"gpu-panel--own", "gpu-panel--others", "gpu-panel--free",
                         "gpu-panel--quiet"}  # fmt: skip

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.sample: GpuSample | None = None
        self.absent = False

    def show(self, sample: GpuSample) -> None:
        self.sample = sample
        self.refresh()

    def show_absent(self) -> None:
        """NVML found no GPU here; a sample from the run's own events still wins."""
        self.absent = True
        self.refresh()

    @property
    def own_mb(self) -> float:
        return sum(p.mem_used_mb for p in self.sample.processes if p.own) if self.sample else 0.0

    @property
    def others_mb(self) -> float:
        return max(0.0, self.sample.mem_used_mb - self.own_mb) if self.sample else 0.0

    def render(self) -> Text:
        style = self.get_component_rich_style
        quiet = style("gpu-panel--quiet", partial=True)
        sample = self.sample
        if sample is None:
            return Text(_(NO_GPU) if self.absent else _("GPU: reading…"), style=quiet)
        total = sample.mem_total_mb or 1.0
        label = f"GPU{sample.index} "
        figures = f" {_gb(sample.mem_used_mb)}/{_gb(sample.mem_total_mb)} GB"
        room = max(10, self.size.width - len(label) - len(figures))
        own = round(room * self.own_mb / total)
        others = min(room - own, round(room * self.others_mb / total))
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(label, style="bold")
        text.append("█" * own, style=style("gpu-panel--own", partial=True))
        text.append("▓" * others, style=style("gpu-panel--others", partial=True))
        text.append("░" * (room - own - others), style=style("gpu-panel--free", partial=True))
        text.append(f"{figures}\n")
        text.append("█ " + _("this run") + " ", style=style("gpu-panel--own", partial=True))
        text.append(f"{_gb(self.own_mb)} GB  ")
        others_count = sum(1 for p in sample.processes if not p.own)
        text.append("▓ " + _("others") + " ", style=style("gpu-panel--others", partial=True))
        text.append(
            _("{gb} GB ({count} proc)").format(gb=_gb(self.others_mb), count=others_count) + "  "
        )
        readings = [
            _("util {pct}%").format(pct=f"{sample.util_pct:.0f}")
            if sample.util_pct is not None
            else "",
            f"{sample.temp_c:.0f}°C" if sample.temp_c is not None else "",
            f"{sample.power_w:.0f} W" if sample.power_w is not None else "",
        ]
        text.append(" · ".join(r for r in readings if r))
        if text.cell_len + len(sample.name) + 2 <= 2 * self.size.width:  # room on line two
            text.append(f"  {sample.name}", style=quiet)
        return text
