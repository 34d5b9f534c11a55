"""Fixtures for driving the wizard: a project folder, a fake GPU, and the tiny student."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.i18n import use_language
from tui.app import StillroomApp

from .scenes import TINY, cache_default_student, prepare

T4 = (15360.0, "Tesla T4")
SIZE = (80, 24)
# Snapshots in English at both sizes (ids as before the wizard spoke Chinese), then in Chinese.
SIZES_AND_LANGS = pytest.mark.parametrize(
    ("size", "lang"),
    [(SIZE, "en"), ((120, 40), "en"), (SIZE, "zh"), ((120, 40), "zh")],
    ids=["80x24", "120x40", "zh-80x24", "zh-120x40"],
)


@pytest.fixture
def lang() -> str:
    """The wizard's language: English unless a test is parametrized with ``lang``."""
    return "en"


@pytest.fixture
def speaking(lang: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The process speaks ``lang`` for one test, then English again (the session's language)."""
    monkeypatch.setenv("STILLROOM_LANG", "en")  # both restored by monkeypatch afterwards
    monkeypatch.setenv("LANGUAGE", "en")
    use_language(lang)
    yield lang
    use_language("en")


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
def make_app(project: Path, speaking: str) -> Callable[..., StillroomApp]:
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
