"""A file browser for path fields: pick a data file with the keyboard instead of typing it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Input, Static

from engine.i18n import N_, _
from tui.widgets.footer import Footer
from tui.widgets.knob import Knob

# What prompt files and datasets are usually stored as.
DATA_SUFFIXES = frozenset({".txt", ".jsonl", ".json", ".csv", ".tsv", ".parquet"})
PLAN_SUFFIXES = frozenset({".toml"})
DOCUMENT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".pdf", ".docx", ".html", ".htm"})


class DataTree(DirectoryTree):
    """Folders and files of the wanted kinds only; hidden entries (.git, .venv) stay out of
    the way."""

    def __init__(self, path: Path, suffixes: frozenset[str] = DATA_SUFFIXES) -> None:
        super().__init__(path)
        self.suffixes = suffixes

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [
            path
            for path in paths
            if not path.name.startswith(".")
            and (self._safe_is_dir(path) or path.suffix.lower() in self.suffixes)
        ]

    def on_tree_node_expanded(self) -> None:
        """With the root hidden the cursor starts nowhere: put it on the first entry."""
        if self.cursor_line < 0:
            self.cursor_line = 0


class FilePicker(ModalScreen[str | None]):
    """Dismisses with the picked path (relative to the project folder when inside it) or None."""

    DEFAULT_CSS = """
    FilePicker {
        align: center middle;
    }
    FilePicker > Vertical {
        width: 100%;
        max-width: 76;
        height: 100%;
        max-height: 20;
        border: thick $accent;
        padding: 0 1;
        background: $surface;
    }
    FilePicker #where {
        text-style: bold;
    }
    FilePicker DataTree {
        height: 1fr;
    }
    FilePicker .hint {
        color: $text-muted;
    }
    """

    BINDINGS = [
        Binding("escape", "dismiss", N_("Cancel")),
        Binding("backspace", "up", N_("Parent folder")),
        Binding("ctrl+o", "pick_folder", N_("Use folder")),
    ]

    def __init__(
        self,
        project: Path | None = None,
        *,
        suffixes: frozenset[str] = DATA_SUFFIXES,
        folders: bool = False,
    ) -> None:
        """``folders``: a folder may be picked too (ctrl+o), for sources that read a whole tree."""
        super().__init__()
        self.project = (project or Path.cwd()).resolve()
        self.suffixes = suffixes
        self.folders = folders

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(id="where", markup=False)
            tree = DataTree(self.project, self.suffixes)
            tree.show_root = False  # its label is the full path; #where names the folder
            yield tree
            hint = _("Enter picks a file or opens a folder.")
            if self.folders:
                hint = _(
                    "Enter picks a file or opens a folder; ctrl+o uses the folder under the cursor."
                )
            yield Static(hint, classes="hint")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._show_where()

    def _show_where(self) -> None:
        root = Path(self.query_one(DataTree).path)
        if root == self.project:
            where = _("Pick a file in the project folder")
        else:
            where = _("Pick a file in {folder}").format(folder=self._shown(root))
        self.query_one("#where", Static).update(where)

    def _shown(self, path: Path) -> Path:
        """``path`` relative to the project folder when inside it, else absolute."""
        return path.relative_to(self.project) if path.is_relative_to(self.project) else path

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return self.folders if action == "pick_folder" else True

    def action_pick_folder(self) -> None:
        """The folder under the cursor, or the one listed when the cursor is on a file."""
        tree = self.query_one(DataTree)
        node = tree.cursor_node
        path = Path(node.data.path) if node is not None and node.data is not None else None
        if path is None or not path.is_dir():
            path = Path(tree.path) if path is None else path.parent
        self.dismiss(str(self._shown(path)))

    def action_up(self) -> None:
        tree = self.query_one(DataTree)
        tree.path = Path(tree.path).parent
        self._show_where()

    @on(DirectoryTree.FileSelected)
    def _picked(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.dismiss(str(self._shown(event.path)))


def fill(knob: Knob, path: str) -> bool:
    """Put a picked path in ``knob`` and the plan, validated as if typed; False if refused."""
    with knob.screen.prevent(Input.Changed):
        knob.show(path)
    error = knob.app.change_key(knob.key, path)  # type: ignore[attr-defined]
    knob.explain(error)
    return error is None
