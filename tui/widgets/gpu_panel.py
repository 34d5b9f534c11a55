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
    """A memory bar split into this run / others / free, then the readings.

    "This run" is memory held by the training child and its descendants (NVML's
    process list, ``own`` flag); "others" is everything else in use, so a
    neighbour on a shared card is visible before it causes an out-of-memory.
    A run on several cards gets a bar per card it uses, then one line of totals.
    """

    DEFAULT_CSS = """
    GpuPanel {
        height: auto;
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
        self.cards: dict[int, GpuSample] = {}
        self.absent = False

    def show(self, sample: GpuSample) -> None:
        """One card's reading (the others keep their last)."""
        self.cards[sample.index] = sample
        self.refresh(layout=True)

    def show_all(self, samples: list[GpuSample]) -> None:
        """Every card's reading at once."""
        self.cards = {s.index: s for s in samples}
        self.refresh(layout=True)

    @property
    def in_use(self) -> list[GpuSample]:
        """The cards this run holds memory on; the first card before it holds any."""
        cards = [self.cards[i] for i in sorted(self.cards)]
        own = [s for s in cards if any(p.own for p in s.processes)]
        return own or cards[:1]

    @property
    def sample(self) -> GpuSample | None:
        """The card shown when the run uses one."""
        cards = self.in_use
        return cards[0] if cards else None

    def show_absent(self) -> None:
        """NVML found no GPU here; a sample from the run's own events still wins."""
        self.absent = True
        self.refresh()

    @property
    def own_mb(self) -> float:
        return sum(_own_mb(s) for s in self.in_use)

    @property
    def others_mb(self) -> float:
        return sum(max(0.0, s.mem_used_mb - _own_mb(s)) for s in self.in_use)

    def render(self) -> Text:
        style = self.get_component_rich_style
        quiet = style("gpu-panel--quiet", partial=True)
        cards = self.in_use
        if not cards:
            return Text(_(NO_GPU) if self.absent else _("GPU: reading…"), style=quiet)
        text = Text(no_wrap=True, overflow="ellipsis")
        for sample in cards:
            self._bar(text, sample)
        text.append("█ " + _("this run") + " ", style=style("gpu-panel--own", partial=True))
        text.append(f"{_gb(self.own_mb)} GB  ")
        others_count = len({p.pid for s in cards for p in s.processes if not p.own})
        text.append("▓ " + _("others") + " ", style=style("gpu-panel--others", partial=True))
        text.append(
            _("{gb} GB ({count} proc)").format(gb=_gb(self.others_mb), count=others_count) + "  "
        )
        if len(cards) > 1:
            text.append(_("{n} cards").format(n=len(cards)))
            return text
        sample = cards[0]
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

    def _bar(self, text: Text, sample: GpuSample) -> None:
        """One card's line: this run's memory, others', free, and (with several) its load."""
        style = self.get_component_rich_style
        total = sample.mem_total_mb or 1.0
        label = f"GPU{sample.index} "
        figures = f" {_gb(sample.mem_used_mb)}/{_gb(sample.mem_total_mb)} GB"
        if len(self.in_use) > 1 and sample.util_pct is not None:
            figures += f" {sample.util_pct:3.0f}%"
        room = max(10, self.size.width - len(label) - len(figures))
        own_mb = _own_mb(sample)
        own = round(room * own_mb / total)
        others = min(room - own, round(room * max(0.0, sample.mem_used_mb - own_mb) / total))
        text.append(label, style="bold")
        text.append("█" * own, style=style("gpu-panel--own", partial=True))
        text.append("▓" * others, style=style("gpu-panel--others", partial=True))
        text.append("░" * (room - own - others), style=style("gpu-panel--free", partial=True))
        text.append(f"{figures}\n")


def _own_mb(sample: GpuSample) -> float:
    return sum(p.mem_used_mb for p in sample.processes if p.own)
