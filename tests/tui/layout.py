"""What a screen shows and where it ends: the checks that nothing is cut at 80 columns.

Shared by the English tests and their Chinese twins, where a character takes two cells.
"""

from __future__ import annotations

from rich.cells import cell_len
from textual.app import App
from textual.widgets import Label


def screen_lines(app: App) -> list[str]:
    """What the terminal shows now, one string per row."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


# A cut line's "…" sits at the right edge, give or take a border, padding and a scrollbar.
EDGE = 4


def cut_lines(app: App) -> list[str]:
    """Rows that end in "…" at the window's edge: a help or status line cut where its fix was.

    "Open a plan file…" ends so on purpose, and so does a run folder named for its plan
    ("into runs/qwen-distill-…"), wherever the line ends.
    """
    width = app.size.width
    return [
        line
        for line in screen_lines(app)
        if (text := line.rstrip()).endswith("…")
        and not text.endswith("-…")
        and cell_len(text) > width - EDGE
    ]


def footer_keys(app: App) -> dict[str, int]:
    """Each footer key's action and the column its description ends at."""
    return {key.action: key.region.right for key in app.screen.query("FooterKey")}


def wrapped_labels(app: App) -> list[str]:
    """Field labels wider than their column: they would wrap onto a second row."""
    return [
        str(label.render())
        for label in app.screen.query(Label)
        if label.region.width and cell_len(str(label.render())) > label.content_region.width
    ]
