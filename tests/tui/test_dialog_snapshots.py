"""What the wizard's smaller dialogs look like, at 80x24 and at 120x40.

The chat options (ctrl+o in the Chat step), the Teacher step's model picker
(ctrl+l from the Model field, against a loopback teacher) and the Train step's
cancel confirmation (ctrl+x while a run is followed).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Static

from tests.teacher_server import TeacherServer
from tui.app import StillroomApp
from tui.screens.chat import OptionsScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.teacher import ModelPicker, TeacherScreen

from . import scenes
from .conftest import SIZES_AND_LANGS, T4, no_gpu

SIZES = SIZES_AND_LANGS
KEY_VAR = "STILLROOM_SNAPSHOT_TEACHER_KEY"
# The loopback teacher listens on a random port: the capture shows this URL instead.
SHOWN_URL = "http://127.0.0.1:8000/v1"


@pytest.fixture
def app(project: Path, tiny_model_dir: Path, speaking: str) -> StillroomApp:
    scenes.prepare(project, tiny_model_dir)
    return StillroomApp(Path("stillroom-plan.toml"), gpu_probe=lambda: T4, gpu_sampler=no_gpu)


@pytest.fixture
def teacher(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TeacherServer]:
    with TeacherServer() as server:
        monkeypatch.setenv(KEY_VAR, server.api_key)
        yield server


async def chat_options(pilot: Pilot) -> None:
    """The Chat step with no trained run yet, then ctrl+o."""
    await pilot.press("n")
    await pilot.pause()
    pilot.app.switch_mode("chat")
    await scenes.settle(pilot)
    await pilot.press("ctrl+o")
    await scenes.until(pilot, lambda: isinstance(pilot.app.screen, OptionsScreen))
    await scenes.settle(pilot)


async def model_picker(base_url: str, pilot: Pilot) -> None:
    """The loopback teacher in the plan; ctrl+l from the Model field lists what it serves.

    Once the picker is up, the port-bearing URL is replaced by ``SHOWN_URL`` wherever it
    shows (the Base URL field, the line under the buttons, the picker's heading).
    """
    app = pilot.app
    await pilot.press("n")
    await pilot.pause()
    app.change("teacher", provider="local", base_url=base_url, model="teacher-1",
               api_key_env=KEY_VAR, prompts="prompts.txt")  # fmt: skip
    step = app.screen
    assert isinstance(step, TeacherScreen)
    step.show_plan()
    step.query_one("#knob-teacher-model Input", Input).focus()
    await pilot.pause()
    app.clear_notifications()  # the "New plan" toast, which would show through
    await pilot.press("ctrl+l")
    await scenes.until(pilot, lambda: isinstance(app.screen, ModelPicker))
    await scenes.settle(pilot)

    app.change("teacher", base_url=SHOWN_URL)
    step.show_plan()
    result = step.query_one("#test-result", Static)
    result.update(str(result.render()).replace(base_url, SHOWN_URL))
    note = app.screen.query_one("Vertical > Static", Static)
    note.update(str(note.render()).replace(base_url, SHOWN_URL))
    for field in step.query(Input):
        field.cursor_blink = False
    await scenes.settle(pilot)
    assert isinstance(app.screen, ModelPicker)


async def cancel_confirm(pilot: Pilot) -> None:
    """The Train step following a recorded run at step 36 of 60, then ctrl+x."""
    await scenes.train(pilot)
    await pilot.press("ctrl+x")
    await scenes.until(pilot, lambda: isinstance(pilot.app.screen, ConfirmScreen))
    pilot.app.clear_notifications()
    await pilot.pause()


@SIZES
def test_chat_options(snap_compare, app, size, lang):
    """You should see, over the dimmed Chat step, a box titled "Chat options (this session
    only)" with Answer budget 512, an empty System prompt and Temperature 0, a hint that Enter
    saves and escape keeps the old values, and esc Keep as they were in the footer."""
    assert snap_compare(app, terminal_size=size, run_before=chat_options)


@SIZES
def test_model_picker(snap_compare, app, teacher, size, lang):
    """You should see, over the dimmed Teacher step (Model teacher-1, Base URL
    http://127.0.0.1:8000/v1), a box headed "http://127.0.0.1:8000/v1 serves:" listing
    teacher-1 (highlighted: the current model), teacher-reasoner and teacher-think, and esc
    Cancel in the footer."""
    assert snap_compare(app, terminal_size=size, run_before=partial(model_picker, teacher.base_url))


@SIZES
def test_cancel_run_confirm(snap_compare, app, size, lang):
    """You should see, over the dimmed Train step following a run at step 36 of 60, a box
    asking "Stop <run> at the end of the current step?" with a line saying 36 steps are done,
    the adapter of the step it stops at is saved in the run's adapter folder and `stillroom
    train --resume <run>` can continue it, and y Yes and n No in the footer."""
    assert snap_compare(app, terminal_size=size, run_before=cancel_confirm)
