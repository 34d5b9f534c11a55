"""The footer every screen docks at the bottom, its key descriptions in the current language."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer as TextualFooter
from textual.widgets._footer import FooterKey

from engine.i18n import _


class Footer(TextualFooter):
    """Textual's footer; ``Binding`` descriptions are class constants marked with ``N_``, so
    they are translated here, each time the keys are laid out (after a language switch too)."""

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            if isinstance(widget, FooterKey) and widget.description:
                widget.description = _(widget.description)
            yield widget
