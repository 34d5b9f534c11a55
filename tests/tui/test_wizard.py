"""The wizard shell: welcome, step navigation and its gates, autosave and restore."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.plan import load_plan
from engine.settings import load_settings
from tui.app import StillroomApp
from tui.draft import read_draft
from tui.screens.data import DataScreen
from tui.screens.file_picker import FilePicker
from tui.screens.teacher import TeacherScreen
from tui.screens.welcome import WelcomeScreen
from tui.widgets.knob import Knob

from . import scenes
from .conftest import SIZE
from .layout import cut_lines, footer_keys, screen_lines, wrapped_labels

pytestmark = pytest.mark.anyio


async def test_welcome_then_new_plan_opens_the_teacher_step(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, WelcomeScreen)
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, TeacherScreen)
    plan, step = read_draft(Path("stillroom-plan.toml"))
    assert step == "teacher" and plan == load_plan("stillroom-plan.toml")


async def test_the_welcome_screen_switches_the_language_and_it_is_remembered(
    make_app, tmp_path_factory, monkeypatch
):
    """l on Welcome: every step speaks Chinese from then on, next time too (user settings,
    not the plan), and the draft is untouched; l again goes back to English."""
    # Settings of its own: the session's would otherwise remember this test's choice.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.pause()
        app.change("training", max_steps=77)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert "Language: English (switch to 简体中文)" in "\n".join(screen_lines(app))
        await pilot.press("l")
        await pilot.pause()
        assert "语言：简体中文（切换到 English）" in "\n".join(screen_lines(app))
        assert load_settings()["lang"] == "zh"
        await pilot.press("c")  # the teacher step, built before the switch, is built again
        await pilot.pause()
        shown = "\n".join(screen_lines(app))
        assert isinstance(app.screen, TeacherScreen)
        assert "1 教师" in shown and "服务商" in shown and "退出" in shown
        await pilot.press("ctrl+p", "l")
        await pilot.pause()
        assert "Language: English" in "\n".join(screen_lines(app))
    assert load_settings()["lang"] == "en"
    assert load_plan("stillroom-plan.toml").training.max_steps == 77
    assert "lang" not in Path("stillroom-plan.toml").read_text()


@pytest.mark.parametrize("lang", ["zh"])
async def test_in_chinese_the_recent_runs_say_their_state_in_chinese(make_app, project):
    """A crashed run on Welcome reads 已崩溃 in Chinese, aligned like the English list."""
    for name in ("older", "gone"):
        (project / "runs" / name).mkdir(parents=True)
        (project / "runs" / name / "plan.toml").write_text("")  # no events: the process is gone
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        listing = app.screen.query_one("#runs")
        await scenes.until(pilot, lambda: "gone" in str(listing.render()))
        lines = [line for line in screen_lines(app) if "gone" in line or "older" in line]
        assert all("已崩溃" in line and "crashed" not in line for line in lines), lines
        assert len({line.index("已崩溃") for line in lines}) == 1, lines


async def test_next_is_gated_with_a_reason_and_back_returns(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n", "ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, DataScreen)
        await pilot.press("ctrl+n")  # no dataset read yet
        await pilot.pause()
        assert isinstance(app.screen, DataScreen)
        assert any("Read a dataset first" in n.message for n in app._notifications)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, TeacherScreen)


async def test_step_keys_wait_while_a_dialog_is_open(make_app):
    """Back/Next under an open dialog would leave the dialog stranded on another step."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n", "ctrl+n", "ctrl+f")  # the Data step's file browser
        await pilot.pause()
        assert isinstance(app.screen, FilePicker)
        await pilot.press("ctrl+p", "ctrl+g")
        await pilot.pause()
        assert isinstance(app.screen, FilePicker) and app.current_mode == "data"
        await pilot.press("escape", "ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, TeacherScreen)


async def test_each_step_opens_with_its_first_setting_focused_for_typing(make_app):
    """Over SSH with no mouse, arriving at a step and typing must fill in a field."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n", "ctrl+n")
        await pilot.pause()
        await pilot.press("ctrl+u", *"typed.jsonl")
        await pilot.pause()
    assert load_plan("stillroom-plan.toml").dataset.source == "typed.jsonl"


async def test_typed_values_are_autosaved_and_restored_at_the_same_step(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n", "ctrl+n")
        await pilot.pause()
        await pilot.click("#knob-dataset-source Input")
        await pilot.press("end", "ctrl+u", *"mine.jsonl")
        await pilot.pause()
    assert load_plan("stillroom-plan.toml").dataset.source == "mine.jsonl"

    again = make_app()
    async with again.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(again.screen, DataScreen)
        source = again.screen.query_one("#knob-dataset-source", Knob)
        assert source.value == "mine.jsonl"


async def test_an_invalid_value_says_why_and_is_not_saved(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.pause()
        await pilot.click("#knob-teacher-concurrency Input")
        await pilot.press("end", "ctrl+u", "0")
        await pilot.pause()
        knob = app.screen.query_one("#knob-teacher-concurrency", Knob)
        assert knob.has_class("-invalid")
        assert "greater than or equal to 1" in str(knob.query_one(".help").render())
    assert load_plan("stillroom-plan.toml").teacher.concurrency == 16


async def test_a_broken_draft_starts_from_defaults_and_says_so(project):
    Path("stillroom-plan.toml").write_text("[training]\nbatch_size = 0\n")
    app = StillroomApp(Path("stillroom-plan.toml"), gpu_probe=lambda: None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, WelcomeScreen)
        assert any("batch_size" in n.message for n in app._notifications)


@pytest.mark.parametrize("scene", sorted(scenes.SCENES))
async def test_every_footer_key_fits_in_80_columns(scene, make_app, tiny_student):
    """Over SSH at 80x24 no key may be cut off the footer's right edge, the Data step's
    fixes for a too-long row included."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await scenes.SCENES[scene](pilot)
        keys = footer_keys(app)
    assert_footer_fits(scene, keys)


def assert_footer_fits(scene: str, keys: dict[str, int]) -> None:
    assert "show_command" in keys or scene == "command"
    assert scene != "data" or {"fit_length", "toggle_overflow"} <= keys.keys()
    assert max(keys.values()) <= SIZE[0], keys


@pytest.mark.parametrize("lang", ["zh"])
@pytest.mark.parametrize("scene", sorted(scenes.SCENES))
async def test_in_chinese_nothing_passes_column_80(scene, lang, make_app, tiny_student):
    """Two cells a character: every footer key, the step bar, status and help lines and
    field labels still fit 80x24 (wrapped, never cut), and the screen speaks Chinese."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await scenes.SCENES[scene](pilot)
        keys, cut, labels = footer_keys(app), cut_lines(app), wrapped_labels(app)
        shown = "\n".join(screen_lines(app))
    assert_footer_fits(scene, keys)
    assert not cut, cut
    assert not labels, labels
    assert "退出" in shown or scene == "command"  # the footer's Quit, translated
