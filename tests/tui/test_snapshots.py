"""What each screen looks like, at 80x24 (the SSH minimum) and at 120x40."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.app import THEMES, StillroomApp

from . import scenes
from .conftest import SIZES_AND_LANGS, T4, no_gpu

SMALL, LARGE = (80, 24), (120, 40)
SIZES = SIZES_AND_LANGS


@pytest.fixture
def app(project: Path, tiny_model_dir: Path, speaking: str) -> StillroomApp:
    scenes.prepare(project, tiny_model_dir)
    return StillroomApp(Path("stillroom-plan.toml"), gpu_probe=lambda: T4, gpu_sampler=no_gpu)


@SIZES
def test_welcome(snap_compare, app, size, lang):
    """You should see the welcome screen: New plan highlighted, Open a plan file, no runs yet."""
    assert snap_compare(app, terminal_size=size, run_before=scenes.welcome)


@SIZES
def test_teacher(snap_compare, app, size, lang):
    """You should see the Teacher step lit in the step bar, a local teacher-1 endpoint with
    no key needed, prompts.txt as the prompt file, and Test call / Generate / Pause buttons."""
    assert snap_compare(app, terminal_size=size, run_before=scenes.teacher)


@SIZES
def test_data(snap_compare, app, size, lang):
    """You should see answers.jsonl read as pair with prompt=title and response=body, the rows
    table, problems (an empty answer, a duplicate), then (scrolled) a sample whose answer is
    highlighted as trained and a length histogram."""
    assert snap_compare(app, terminal_size=size, run_before=scenes.data)


@SIZES
def test_student(snap_compare, app, size, lang):
    """You should see a red WILL NOT FIT gauge for batch size 64 on a 15 GB T4, with the
    ctrl+y fix to apply, above the student, LoRA and training knobs."""
    assert snap_compare(app, terminal_size=size, run_before=scenes.student)


@SIZES
def test_show_as_command(snap_compare, app, size, lang):
    """You should see a dialog with `stillroom plan` and `stillroom inspect answers.jsonl
    --format pair --map prompt=title,response=body ...` and the draft plan's TOML."""
    assert snap_compare(app, terminal_size=size, run_before=scenes.command)


@SIZES
def test_train(snap_compare, app, size, lang):
    """You should see the Train step following a live run at step 36 of 60: a green step bar
    with loss, lr, 5,156 tok/s and ETA 0:38; an H100 memory bar split into this run (18.0 GB)
    and others (6.6 GB, one process) with util, temperature and power; a falling braille loss
    line with the lr schedule beneath it; and the log with the run's plain-words summary."""
    assert snap_compare(app, terminal_size=size, run_before=scenes.train)


async def chat_without_a_run(pilot) -> None:
    await pilot.press("n")
    await pilot.pause()
    pilot.app.switch_mode("chat")
    await scenes.settle(pilot)


def test_chat_without_a_run(snap_compare, app):
    """You should see the Chat step lit in the step bar, a line saying no trained run of
    'qwen-distill' is in runs/ yet and how to train one, an empty transcript, the input line
    focused, and in the footer ctrl+e Eval, ctrl+x Export, ctrl+b Base, ctrl+t Compare,
    ctrl+o Options, then Quit, Back and As command (no Next: Chat is the last step)."""
    assert snap_compare(app, terminal_size=SMALL, run_before=chat_without_a_run)


@pytest.mark.parametrize("lang", ["zh"])
@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_chat_without_a_run_in_chinese(snap_compare, app, size, lang):
    """The same Chat step in Chinese: 对话 lit in the step bar, the no-run line wrapped whole,
    and the footer's keys (评估, 导出, 基座, 对比, 选项, 退出, 上一步, 命令) inside 80 columns."""
    assert snap_compare(app, terminal_size=size, run_before=chat_without_a_run)


@pytest.mark.parametrize("scene", ["data", "train"])
def test_light_theme(snap_compare, app, scene):
    """`stillroom --theme light`: you should see the same Data (mapping, rows, problems) and
    Train (bars, chart, log) screens in dark text on a light background, every line legible."""
    app.theme = THEMES["light"]
    assert snap_compare(app, terminal_size=SMALL, run_before=scenes.SCENES[scene])
