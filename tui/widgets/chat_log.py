"""The Chat step's transcript: the user's turns and the answers (student, base, teacher)."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.widgets import Static

from engine.i18n import N_, _

# Who answers, as the transcript labels them.
WHO = {"student": N_("student"), "base": N_("base"), "teacher": N_("teacher")}

# A streamed answer is redrawn at most this often: a token at a time would redraw the
# whole growing answer hundreds of times a second, and the eye sees no difference.
REDRAW_S = 0.05


class ChatLog(VerticalScroll):
    """Turns one under another; the last answer grows piece by piece, then gets a meta line."""

    DEFAULT_CSS = """
    ChatLog {
        height: 1fr;
        border: round $primary-background;
        padding: 0 1;
    }
    ChatLog > .user {
        color: $text-accent;
        margin: 1 0 0 0;
    }
    ChatLog > .answer {
        margin: 0 0 0 2;
    }
    ChatLog > .-base {
        color: $text-warning;
    }
    ChatLog > .-teacher {
        color: $text-success;
    }
    ChatLog > .meta {
        color: $text-muted;
        margin: 0 0 0 2;
    }
    ChatLog > .-cut {
        color: $text-error;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.answer_text = ""
        self._answer: Static | None = None
        self._label = ""
        self._redraw_due = False

    def add_user(self, text: str) -> None:
        self.mount(Static(_("you › {text}").format(text=text), classes="user", markup=False))
        self.scroll_end(animate=False)

    def start_answer(self, who: str) -> None:
        """An answer from ``who`` (student, base or teacher) begins, labelled and coloured."""
        self._label = f"{_(WHO[who]) if who in WHO else who} › "
        self.answer_text = ""
        self._answer = Static(self._label + "…", classes=f"answer -{who}", markup=False)
        self.mount(self._answer)
        self.scroll_end(animate=False)

    def add_piece(self, text: str) -> None:
        """Append to the answer; the screen catches up within :data:`REDRAW_S`."""
        self.answer_text += text
        if not self._redraw_due:
            self._redraw_due = True
            self.set_timer(REDRAW_S, self._redraw)

    def _redraw(self) -> None:
        self._redraw_due = False
        if self._answer is not None:
            self._answer.update(self._label + self.answer_text)
            self.scroll_end(animate=False)

    def finish(self, text: str, meta: str, *, cut: bool) -> None:
        self.answer_text = text
        if self._answer is not None:
            self._answer.update(self._label + (text or _("(nothing)")))
        self._answer = None
        self.mount(Static(meta, classes="meta -cut" if cut else "meta", markup=False))
        self.scroll_end(animate=False)

    def note(self, text: str, *, error: bool = False) -> None:
        self._answer = None
        self.mount(Static(text, classes="meta -cut" if error else "meta", markup=False))
        self.scroll_end(animate=False)

    def clear(self) -> None:
        self._answer = None
        self.answer_text = ""
        self.remove_children()
