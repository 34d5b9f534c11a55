"""Fixtures for driving the wizard: a project folder, a fake GPU, and the tiny student."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tui.app import StillroomApp

from .scenes import TINY, cache_default_student, prepare

T4 = (15360.0, "Tesla T4")
SIZE = (80, 24)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project folder as the working directory, offline, so paths on screen are short."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = cache_default_student(tmp_path.parent / f"{tmp_path.name}-hub-cache")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    return tmp_path


@pytest.fixture
def make_app(project: Path) -> Callable[..., StillroomApp]:
    """A wizard on ./stillroom-plan.toml that sees a 15 GB T4, whatever this machine has
    (keywords go to :class:`StillroomApp`).

    Live GPU sampling finds no GPU, so the GPU panel shows only what a run's events say.
    """
    return lambda **options: StillroomApp(Path("stillroom-plan.toml"), gpu_probe=lambda: T4,
                                          gpu_sampler=no_gpu, **options)  # fmt: skip


def no_gpu(own_pids: set[int]) -> None:
    """A GPU sampler for a machine without an NVIDIA driver."""
    return None


@pytest.fixture
def wrong_columns(project: Path) -> Path:
    """answers.jsonl: its column order makes detection guess the roles the wrong way round."""
    prepare(project)
    return project / "answers.jsonl"


@pytest.fixture
def tiny_student(project: Path, tiny_model_dir: Path) -> str:
    """The tiny model linked into the project, so its path on screen is always ./tiny-model."""
    prepare(project, tiny_model_dir)
    return TINY


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (Textual's loop) through anyio's pytest plugin."""
    return "asyncio"
