"""A yes/no question that must be answered with a key before something irreversible."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from engine.i18n import N_
from tui.widgets.footer import Footer


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses with ``True`` for y, ``False`` for n or escape."""

    DEFAULT_CSS = """
    ConfirmScreen {
        align: center middle;
    }
    ConfirmScreen > Vertical {
        width: 100%;
        max-width: 72;
        height: auto;
        border: thick $warning;
        padding: 0 1;
        background: $surface;
    }
    ConfirmScreen .question {
        text-style: bold;
    }
    ConfirmScreen .detail {
        color: $text-muted;
    }
    """

    BINDINGS = [
        Binding("y", "answer(True)", N_("Yes")),
        Binding("n,escape", "answer(False)", N_("No")),
    ]

    def __init__(self, question: str, detail: str) -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, classes="question", markup=False)
            yield Static(self.detail, classes="detail", markup=False)
        yield Footer(compact=True)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
