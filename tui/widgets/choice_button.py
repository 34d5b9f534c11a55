"""A radio button whose mark itself says chosen or not, so it reads without colour."""

from __future__ import annotations

from textual.widgets import RadioButton


class ChoiceButton(RadioButton):
    """``●`` when chosen, ``○`` when not: Textual's own button draws ``●`` for both and tells
    them apart by colour only, which a plain-text terminal or a colour-blind reader loses."""

    @property
    def BUTTON_INNER(self) -> str:  # type: ignore[override]  # noqa: N802  (Textual's name)
        return "●" if self.value else "○"
