"""Where the run is: a step bar, then loss, learning rate, tokens/s and time to go."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.widget import Widget

from engine.events import Step
from engine.i18n import _
from tui.wording import duration


class RunProgress(Widget):
    """Steps done of planned as a bar, and the latest step's metrics on a second line."""

    DEFAULT_CSS = """
    RunProgress {
        height: 2;
    }
    RunProgress > .run-progress--done { color: $text-success; }
    RunProgress > .run-progress--todo { color: $text-muted; }
    """
    COMPONENT_CLASSES = {"run-progress--done", "run-progress--todo"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.step: Step | None = None

    def show(self, step: Step | None) -> None:
        self.step = step
        self.refresh()

    def render(self) -> Text:
        step = self.step
        style = self.get_component_rich_style
        text = Text(no_wrap=True, overflow="ellipsis")
        if step is None:
            text.append(_("No steps yet."), style=style("run-progress--todo", partial=True))
            return text
        figures = " " + _("{step}/{max_steps} steps · epoch {epoch}").format(
            step=step.step, max_steps=step.max_steps, epoch=f"{step.epoch:.2f}"
        )
        room = max(10, self.size.width - cell_len(figures))
        done = min(room, round(room * step.step / max(1, step.max_steps)))
        text.append("━" * done, style=style("run-progress--done", partial=True))
        text.append("━" * (room - done), style=style("run-progress--todo", partial=True))
        text.append(f"{figures}\n")
        parts = [
            _("loss {loss}").format(loss=f"{step.loss:.4f}" if step.loss is not None else "–"),
            f"lr {step.lr:.1e}" if step.lr is not None else "",
            f"{step.tokens_per_s:,.0f} tok/s" if step.tokens_per_s is not None else "",
            f"MFU {step.mfu:.1%}" if step.mfu is not None else "",
            f"ETA {duration(step.eta_s)}",
            f"grad {step.grad_norm:.2f}" if step.grad_norm is not None else "",
        ]
        text.append(" · ".join(p for p in parts if p))
        return text
