# PLACEHOLDER: replaced by branch demo-student at merge
"""The demo's student: here only the tiny random model (the hub and GGUF routes come later)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

RANDOM_LABEL = "random weights: its answers are noise before training"


@dataclass(frozen=True)
class DemoStudent:
    """A local model folder ``from_pretrained`` reads, where it came from, and how to call it."""

    path: Path
    origin: str
    label: str


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stillroom" / "demo-student"


def find_demo_student(
    cache_dir: Path | None = None,
    *,
    network: bool = True,
    say: Callable[[str], None] = print,
) -> DemoStudent:
    """The tiny random student, built once into ``cache_dir``."""
    folder = Path(cache_dir or default_cache_dir()) / "random"
    if not folder.is_dir():
        import tempfile

        from tests.tiny_model import build_tiny_model

        say(f"building a tiny random student in {folder}")
        folder.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".random-"))
        build_tiny_model(partial)
        partial.replace(folder)  # whole or not at all: a killed build is never taken for one
    return DemoStudent(folder, "random", RANDOM_LABEL)
