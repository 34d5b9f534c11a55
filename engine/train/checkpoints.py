"""Checkpoints that count only once they are whole.

The HF Trainer writes ``checkpoint-N`` in place and, when asked to resume,
trusts the highest-numbered folder. A kill during a save would leave a torn
folder there and poison every later resume. So a checkpoint counts only once
:func:`mark_complete` has written its marker (after the Trainer finished the
folder and rotated old ones); resume takes the newest marked folder and
deletes the unmarked ones first, so nothing downstream ever sees them.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from engine.fileio import atomic_write_text

MARKER = "stillroom-complete"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoints_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def _numbered(root: Path) -> list[tuple[int, Path]]:
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _NAME.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def mark_complete(folder: Path, step: int) -> None:
    """Declare ``folder`` whole; written last, atomically."""
    atomic_write_text(folder / MARKER, f"{step}\n")


def is_complete(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def complete_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Whole checkpoints, oldest first."""
    return [(n, p) for n, p in _numbered(checkpoints_dir(run_dir)) if is_complete(p)]


def prepare_resume(run_dir: Path) -> tuple[int, Path] | None:
    """Delete torn checkpoints and return the newest whole one (step, folder), if any."""
    for _, folder in _numbered(checkpoints_dir(run_dir)):
        if not is_complete(folder):
            shutil.rmtree(folder, ignore_errors=True)
    done = complete_checkpoints(run_dir)
    return done[-1] if done else None
