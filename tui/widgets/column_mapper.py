"""Fix a wrong or unknown format detection by hand: format, then one column per role.

This is the notebook's ``KeyError: 'instruction'`` solved in the UI: when the
data's columns are not the ones a format expects, the user picks them here.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Label, Select

from engine.data.formats import FORMAT_KEYS, REQUIRED_KEYS
from engine.i18n import N_, _

UNMAPPED = ""
_ROLE_HELP = {
    "prompt": N_("the question"),
    "response": N_("the answer to learn"),
    "instruction": N_("the task"),
    "input": N_("context added to the task"),
    "output": N_("the answer to learn"),
    "system": N_("system prompt"),
    "reasoning": N_("teacher's reasoning"),
    "conversations": N_("list of turns"),
    "text": N_("whole rendered text"),
}


class ColumnMapper(Vertical):
    """A format picker and a column picker per role; posts :class:`Changed`."""

    DEFAULT_CSS = """
    ColumnMapper {
        height: auto;
    }
    ColumnMapper > Horizontal {
        height: 1;
    }
    ColumnMapper Label {
        width: 16;
        color: $text-muted;
    }
    ColumnMapper Select {
        width: 24;
    }
    ColumnMapper .role-help {
        width: 1fr;
        padding: 0 0 0 1;
        color: $text-muted;
    }
    """

    class Changed(Message):
        """The user picked a format or a column: ``mapping`` is role -> column."""

        def __init__(self, mapper: ColumnMapper, format: str, mapping: dict[str, str]) -> None:
            super().__init__()
            self.mapper = mapper
            self.format = format
            self.mapping = mapping

        @property
        def control(self) -> ColumnMapper:
            return self.mapper

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.format = "pair"
        self.columns: list[str] = []
        self.mapping: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Label(_("Format"))
            yield Select(
                [(name, name) for name in FORMAT_KEYS],
                value=self.format,
                allow_blank=False,
                compact=True,
                id="format",
            )
            yield Label(_("fix it here if detection got it wrong"), classes="role-help")
        choices = [(_("(none)"), UNMAPPED)] + [(column, column) for column in self.columns]
        for role in FORMAT_KEYS[self.format]:
            required = role in REQUIRED_KEYS.get(self.format, ())
            with Horizontal():
                yield Label(f"{role}{' *' if required else ''}")
                yield Select(
                    choices,
                    value=self.mapping.get(role, UNMAPPED),
                    allow_blank=False,
                    compact=True,
                    id=f"role-{role}",
                    classes="role",
                )
                yield Label(_(_ROLE_HELP[role]) if role in _ROLE_HELP else "", classes="role-help")

    async def show(self, format: str, columns: list[str], mapping: dict[str, str]) -> None:
        """Show a detection (an unknown format is shown as pair, the likeliest fix)."""
        self.format = format if format in FORMAT_KEYS else "pair"
        self.columns = columns
        self.mapping = {k: v for k, v in mapping.items() if v in columns}
        await self.recompose()

    @on(Select.Changed)
    def _picked(self, event: Select.Changed) -> None:
        event.stop()
        select = event.select
        if select.id == "format":
            if event.value == self.format:
                return
            self.format, self.mapping = str(event.value), {}
        else:
            role = (select.id or "").removeprefix("role-")
            if self.mapping.get(role, UNMAPPED) == event.value:
                return
            self.mapping = {k: v for k, v in self.mapping.items() if k != role}
            if event.value != UNMAPPED:
                self.mapping[role] = str(event.value)
        self.post_message(self.Changed(self, self.format, dict(self.mapping)))
