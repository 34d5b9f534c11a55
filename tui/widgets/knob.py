"""One plan key on screen: a label, an editor and an explanation beside it.

The explanation turns into the validation error while the value is wrong, so
every mistake says what to do next right where it was made. It wraps rather than
being cut at the window's edge (the fix is often at the end), and a value longer
than its field is repeated there in full (a model id or a path is read from its end).
"""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input, Label, Select, Static

from engine.i18n import N_

# Words marked for the catalog: a screen shows them as ``_(word)``.
BOOLEAN = [(N_("yes"), True), (N_("no"), False)]
FIELD_WIDTH = 24  # columns of the editor (see DEFAULT_CSS)


class Knob(Horizontal):
    """Edits ``key`` (``section.name``) of the plan; ``choices`` makes it a compact Select."""

    DEFAULT_CSS = """
    Knob {
        height: auto;
        margin: 0 0 0 0;
    }
    Knob > Label {
        width: 16;
        color: $text-muted;
    }
    Knob > Input, Knob > Select {
        width: 24;
        height: 1;
    }
    Knob > .help {
        width: 1fr;
        height: auto;
        padding: 0 0 0 1;
        color: $text-muted;
    }
    Knob.-invalid > .help {
        color: $text-error;
    }
    """

    def __init__(
        self,
        key: str,
        label: str,
        help: str,
        *,
        choices: list[tuple[str, Any]] | None = None,
        placeholder: str = "",
    ) -> None:
        super().__init__(id=f"knob-{key.replace('.', '-')}")
        self.key = key
        self.label = label
        self.help = help
        self.choices = choices
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        yield Label(self.label)
        if self.choices is not None:
            yield Select(self.choices, allow_blank=False, compact=True)
        else:
            yield Input(placeholder=self.placeholder, compact=True)
        yield Static(self.help, classes="help", markup=False)

    @property
    def editor(self) -> Input | Select:
        return self.query_one("Input, Select")  # type: ignore[return-value]

    @property
    def value(self) -> Any:
        """What the user entered; an empty Input means "the default"."""
        editor = self.editor
        if isinstance(editor, Input):
            return editor.value.strip() or None
        return editor.value

    def show(self, value: Any) -> None:
        """Put the plan's value in the editor (the caller silences the change event)."""
        editor = self.editor
        if isinstance(editor, Input):
            text = "" if value is None else str(value)
            if editor.value != text:
                editor.value = text
        elif editor.value != value:
            if self.choices is not None and value not in {v for _label, v in self.choices}:
                # A plan may hold a value the short list leaves out: offer it as it is.
                self.choices = [*self.choices, (str(value), value)]
                editor.set_options(self.choices)
            editor.value = value

    def explain(self, error: str | None = None, help: str | None = None) -> None:
        """Show the error, or the explanation (``help`` replaces the standing one)."""
        if help is not None:
            self.help = help
        self.set_class(bool(error), "-invalid")
        self.query_one(".help", Static).update(error or self._with_value(self.help))

    def _with_value(self, text: str) -> str:
        """``text``, led by the whole value when the field is too narrow to show it."""
        value = self.value
        if isinstance(self.editor, Input) and cell_len(str(value or "")) > FIELD_WIDTH:
            return f"{value} · {text}" if text else str(value)
        return text
