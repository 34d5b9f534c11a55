"""One rendered training sample with the tokens the student is trained on highlighted."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class TokenPreview(Static):
    """Masked text dim, trained text highlighted: shows at a glance what the loss sees."""

    DEFAULT_CSS = """
    TokenPreview {
        height: auto;
        max-height: 12;
        padding: 0 1;
        border-left: thick $success;
    }
    TokenPreview > .token-preview--trained {
        background: $success 25%;
        text-style: bold;
    }
    TokenPreview > .token-preview--masked {
        color: $text-muted;
    }
    """
    COMPONENT_CLASSES = {"token-preview--trained", "token-preview--masked"}

    def show_segments(self, segments: list[tuple[str, bool]]) -> None:
        text = Text()
        trained = self.get_component_rich_style("token-preview--trained", partial=True)
        masked = self.get_component_rich_style("token-preview--masked", partial=True)
        for piece, is_trained in segments:
            text.append(piece, style=trained if is_trained else masked)
        self.update(text)
