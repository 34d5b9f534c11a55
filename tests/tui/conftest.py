"""Fixtures for driving the wizard: a project folder, a fake GPU, and the tiny student."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tui.app import StillroomApp

T4 = (15360.0, "Tesla T4")
SIZE = (80, 24)
# Column order makes detection guess wrong: "body" holds the answers, "title" the questions.
WRONG_COLUMNS = [
    {"body": "The capital of France is Paris.", "title": "What is the capital of France?"},
    {"body": "Seven is a prime number below ten.", "title": "Name a prime number below ten."},
    {"body": "On a clear day the sky is blue.", "title": "What colour is the sky?"},
    {"body": "On a clear day the sky is blue.", "title": "What colour is the sky?"},
    {"body": "", "title": "Say nothing at all."},
]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder as the working directory, offline, so paths on screen are short."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    return tmp_path


@pytest.fixture
def make_app(project: Path) -> Callable[[], StillroomApp]:
    """A wizard on ./stillroom-plan.toml that sees a 15 GB T4, whatever this machine has."""
    return lambda: StillroomApp(Path("stillroom-plan.toml"), gpu_probe=lambda: T4)


@pytest.fixture
def wrong_columns(project: Path) -> Path:
    path = project / "answers.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in WRONG_COLUMNS))
    return path


@pytest.fixture
def tiny_student(project: Path, tiny_model_dir: Path) -> str:
    """The tiny model linked into the project, so its path on screen is always ./tiny-model."""
    (project / "tiny-model").symlink_to(tiny_model_dir)
    return "./tiny-model"


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (Textual's loop) through anyio's pytest plugin."""
    return "asyncio"
