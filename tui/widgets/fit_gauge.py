"""Will the run fit the GPU? A bar of the estimated peak against the card, and the fix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.text import Text
from textual.widget import Widget

from engine.i18n import N_, _

if TYPE_CHECKING:
    from engine.train.memory import Estimate

VERDICT_WORDS = {
    "fits": N_("FITS"),
    "tight": N_("TIGHT"),
    "will_not_fit": N_("WILL NOT FIT"),
    "unknown": N_("NO GPU TO COMPARE"),
}

# The breakdown's names, short enough for one line at 80 columns.
SHORT = {"lora + optimizer": N_("LoRA+opt"), "activations": N_("act"), "allocator": N_("slack"),
         "CUDA context": "CUDA", "weights": N_("weights"), "logits": "logits"}  # fmt: skip


class FitGauge(Widget):
    """Peak-memory bar, its verdict, the breakdown, and the first suggested fix."""

    DEFAULT_CSS = """
    FitGauge {
        height: auto;
        border: round $primary;
        padding: 0 1;
    }
    FitGauge > .fit-gauge--fits { color: $text-success; text-style: bold; }
    FitGauge > .fit-gauge--tight { color: $text-warning; text-style: bold; }
    FitGauge > .fit-gauge--will_not_fit { color: $text-error; text-style: bold; }
    FitGauge > .fit-gauge--unknown { color: $text-muted; text-style: bold; }
    FitGauge > .fit-gauge--empty { color: $text-muted; }
    """
    COMPONENT_CLASSES = {
        "fit-gauge--fits",
        "fit-gauge--tight",
        "fit-gauge--will_not_fit",
        "fit-gauge--unknown",
        "fit-gauge--empty",
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.estimate: Estimate | None = None
        self.message = _("Estimating…")
        self.card = ""

    @property
    def verdict(self) -> str | None:
        return self.estimate.verdict if self.estimate else None

    def show(self, estimate: Estimate | None, card: str, message: str = "") -> None:
        self.estimate, self.card, self.message = estimate, card, message
        self.refresh(layout=True)

    def get_content_height(self, container, viewport, width: int) -> int:  # type: ignore[override]
        """Every line wrapped, not cut: a message's fix is often at its end."""
        return len(self._text(width).wrap(self.app.console, max(width, 1)))

    def render(self) -> Text:
        return self._text(self.size.width)

    def _text(self, width: int) -> Text:
        estimate = self.estimate
        if estimate is None:
            return Text(self.message, style="dim")
        style = self.get_component_rich_style(f"fit-gauge--{estimate.verdict}", partial=True)
        empty = self.get_component_rich_style("fit-gauge--empty", partial=True)
        parts = estimate.parts()
        peak_mb = estimate.peak_mb
        if not estimate.available_mb:  # no GPU here, none picked: no CUDA context to count
            peak_mb -= parts.pop("CUDA context")
        peak_gb = peak_mb / 1024
        word = _(VERDICT_WORDS[estimate.verdict])
        text = Text()
        if estimate.available_mb:
            of = f" {peak_gb:.1f} / {estimate.available_mb / 1024:.1f} GB "
            room = max(4, width - len(of) - cell_len(word) - 1)
            filled = min(room, round(room * estimate.peak_mb / estimate.available_mb))
            text.append("█" * filled, style=style)
            text.append("░" * (room - filled), style=empty)
            text.append(of)
        else:
            text.append(_("~{gb} GB peak · ").format(gb=f"{peak_gb:.1f}"))
        text.append(word, style=style)
        breakdown = ", ".join(
            f"{_(SHORT[name]) if name in SHORT else name} {mb / 1024:.1f}"
            for name, mb in parts.items()
        )
        text.append(f"\nGB: {breakdown}", style="dim")
        if estimate.suggestions and estimate.verdict != "fits":
            text.append("\n" + _("ctrl+y applies: {fix}").format(fix=estimate.suggestions[0]))
        elif estimate.verdict == "fits":
            line = _("{card}: {tokens} tokens in the largest micro-batch").format(
                card=self.card, tokens=f"{estimate.tokens:,}"
            )
            text.append(f"\n{line}", style="dim")
        else:
            text.append("\n" + _("Pick a GPU size above to compare with."), style="dim")
        return text
