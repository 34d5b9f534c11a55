"""The Chat step after a compare, at 80x24 and 120x40: the real facts student, a loopback teacher."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from engine.chat_options import ChatOptions
from tests.engine.training import FACTS
from tests.teacher_server import TeacherServer
from tui.app import StillroomApp
from tui.screens.chat import ChatScreen
from tui.widgets.chat_log import ChatLog

from .conftest import SIZES_AND_LANGS, T4, no_gpu
from .scenes import until

KEY_VAR = "STILLROOM_SNAPSHOT_TEACHER_KEY"
# Timings differ on every run: the scene checks they are shown, then pins them.
TIMINGS = [
    (re.compile(r"[\d.]+ s to first token"), "0.25 s to first token"),
    (re.compile(r"\d+ tok/s"), "180 tok/s"),
    (re.compile(r"API · [\d.]+ s"), "API · 0.05 s"),
    (re.compile(r"用时 [\d.]+ s"), "用时 0.25 s"),  # in Chinese: "… s to first token"
    (re.compile(r"API 回答 · [\d.]+ s"), "API 回答 · 0.05 s"),  # and "… API · … s"
]


@pytest.fixture
def teacher(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TeacherServer]:
    with TeacherServer() as server:
        monkeypatch.setenv(KEY_VAR, server.api_key)
        yield server


@pytest.fixture
def app(project: Path, facts_run: Path, speaking: str) -> StillroomApp:
    """The wizard in a project whose runs/ holds the facts run under a fixed name."""
    (project / "runs").mkdir()
    (project / "runs" / "qwen-distill-facts").symlink_to(facts_run)
    return StillroomApp(Path("stillroom-plan.toml"), gpu_probe=lambda: T4, gpu_sampler=no_gpu)


async def compared(base_url: str, pilot: Pilot) -> None:
    """A new plan with the loopback teacher; one fact asked in compare mode, all three answered."""
    app = pilot.app
    await pilot.press("n")
    await pilot.pause()
    app.change("teacher", provider="custom", base_url=base_url, model="teacher-1",
               api_key_env=KEY_VAR)  # fmt: skip
    app.switch_mode("chat")
    screen = app.screen
    assert isinstance(screen, ChatScreen)
    screen.options = ChatOptions(max_new_tokens=30)
    await until(pilot, lambda: screen.state == "ready", timeout_s=120)
    await pilot.press("ctrl+t")
    screen.query_one("#prompt", Input).value = FACTS[2][0]
    await pilot.press("enter")
    await until(pilot, lambda: screen.state == "ready" and screen.turn is None, timeout_s=60)
    for meta in screen.query_one(ChatLog).query(".meta"):
        text = str(meta.render())
        assert any(pattern.search(text) for pattern, _ in TIMINGS), text
        for pattern, pinned in TIMINGS:
            text = pattern.sub(pinned, text)
        meta.update(text)
    app.clear_notifications()
    screen.query_one("#prompt", Input).cursor_blink = False
    await pilot.pause()


@SIZES_AND_LANGS
def test_chat_after_a_compare(snap_compare, app, teacher, size, lang):
    """You should see the state line in compare mode (student, base, teacher teacher-1, budget
    30 tokens), and in the transcript the fact asked, the student's learned answer marked
    ended cleanly, the base model's different answer, then the teacher's "Answer to: …"
    answered through the API; ctrl+e Eval, ctrl+x Export, ctrl+b Base, ctrl+t Compare and
    ctrl+o Options in the footer."""
    assert snap_compare(app, terminal_size=size, run_before=partial(compared, teacher.base_url))
