"""What a newcomer hit in the wizard at 80x24 (issue 16): notices, cut lines, stale errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.geometry import Region
from textual.widgets import Select

from tui.app import StillroomApp

from . import scenes
from .conftest import SIZE, T4
from .layout import cut_lines, screen_lines
from .scenes import until

pytestmark = pytest.mark.anyio


def toast_regions(app: StillroomApp) -> list[Region]:
    return [toast.region for toast in app.screen.query("Toast")]


async def open_student(app: StillroomApp, pilot) -> None:
    await pilot.press("n")
    await pilot.pause()
    app.switch_mode("student")
    await scenes.settle(pilot)


async def open_dialog(app: StillroomApp, pilot, dialog) -> None:
    """A new plan, then ``dialog`` on top of its first step."""
    await pilot.press("n")
    app.push_screen(dialog)
    await scenes.settle(pilot)


async def test_a_notice_never_covers_the_steps_error_line_and_goes_away(make_app):
    """The "New plan" notice once sat over the Teacher step's error line for 45 s."""
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("n")
        await pilot.press("ctrl+t")  # no DEEPSEEK_API_KEY: an error line
        await app.workers.wait_for_complete()
        await until(pilot, lambda: toast_regions(app))
        step = app.screen
        lines = [step.query_one(f"#{name}").region for name in ("test-result", "progress")]
        assert "not set" in str(step.query_one("#test-result").render())
        for toast in toast_regions(app):
            assert all(not toast.overlaps(line) for line in lines), (toast, lines)
        assert all(notice.timeout <= 8 for notice in app._notifications)
        await until(pilot, lambda: not app._notifications and not toast_regions(app), 10)


async def test_every_notice_times_out_within_seconds(project):
    """Even the broken-draft notice, which asked for 15 s."""
    Path("stillroom-plan.toml").write_text("[training]\nbatch_size = 0\n")
    app = StillroomApp(Path("stillroom-plan.toml"), gpu_probe=lambda: None)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: app._notifications)
        assert [notice.timeout for notice in app._notifications] == [8]


async def test_the_teacher_steps_progress_bar_is_drawn_while_generating(make_app):
    """Its inner bar took the step's margin and was clipped: an invisible bar redrawn 15 times
    a second, which also left notices standing on a real terminal."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.pause()
        step = app.screen
        assert not step.query_one("#generation-bar").display  # nothing to show yet
        step._set_running(True)
        await pilot.pause()
        bar = step.query_one("#generation-bar").query_one("Bar")
        assert bar.region.height == 1 and step.query_one("#body").region.contains_region(bar.region)


@pytest.mark.parametrize("scene", ["teacher", "student", "data"])
async def test_no_help_or_status_line_is_cut_at_80_columns(scene, make_app, tiny_student):
    """Help lines wrap instead of ending in "…" where the fix was ("export DEEPSEEK_A…")."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await scenes.SCENES[scene](pilot)
        if scene == "teacher":
            app.change("teacher", provider="deepseek", api_key_env="DEEPSEEK_API_KEY")
            app.screen.show_plan()
            await pilot.pause()
        cut = cut_lines(app)
        shown = "\n".join(screen_lines(app))
    assert not cut, cut
    if scene == "teacher":
        assert "export" in shown and "DEEPSEEK_API_KEY=…, start again" in shown.replace("\n", "")


async def test_a_long_model_id_is_shown_whole_beside_its_field(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_student(app, pilot)
        help_line = str(app.screen.query_one("#knob-student-model .help").render())
    assert "unsloth/Qwen2.5-1.5B-Instruct" in help_line


async def test_a_teacher_error_belongs_to_the_settings_it_was_made_with(make_app):
    """After a failed test call on deepseek, picking `local` clears the DEEPSEEK_API_KEY error;
    the error names the field to change, not a command-line flag."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.press("ctrl+t")
        await app.workers.wait_for_complete()
        await pilot.pause()
        result = app.screen.query_one("#test-result")
        said = str(result.render())
        assert "DEEPSEEK_API_KEY is not set" in said and "Key variable field" in said
        assert "--" not in said

        app.screen.query_one("#knob-teacher-provider Select", Select).value = "local"
        await pilot.pause()
        await pilot.pause()
        assert app.plan.teacher.provider == "local"
        assert "DEEPSEEK" not in str(result.render())
        assert not result.has_class("-error")


async def test_open_a_plan_picks_a_file_and_edits_it_in_place(make_app, project):
    """ "o" opens the file picker on plan files; the opened file is the one the wizard saves,
    not a silent copy in ./stillroom-plan.toml."""
    from engine.plan import load_plan
    from tui.screens.file_picker import DataTree, FilePicker
    from tui.screens.teacher import TeacherScreen

    scenes.prepare(project)
    Path("my-plan.toml").write_text('[training]\nmax_steps = 7\n[output]\nname = "mine"\n')
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, FilePicker))
        tree = app.screen.query_one(DataTree)
        await until(pilot, lambda: tree.root.children)
        assert [str(node.label) for node in tree.root.children] == ["my-plan.toml"]
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, TeacherScreen))
        assert app.plan.training.max_steps == 7
        app.change("teacher", temperature=0.3)
    assert load_plan("my-plan.toml").teacher.temperature == 0.3
    assert load_plan("my-plan.toml").training.max_steps == 7
    assert not Path("stillroom-plan.toml").exists()


@pytest.mark.parametrize("typed", ["", ".", "data"])
async def test_opening_a_folder_or_nothing_says_to_pick_a_plan_file(make_app, project, typed):
    (project / "data").mkdir()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        said = app.open_plan(typed)
    assert "pick a .toml file" in said and "Is a directory" not in said


async def test_after_a_failed_run_the_train_header_follows_the_changed_plan(make_app, project):
    from engine import events as ev
    from tui.screens.train import TrainScreen

    from .replayer import Replay, make_run_dir, recorded_run

    run_dir = make_run_dir(Path("runs"))
    oom = ev.Error(kind="oom", message="CUDA out of memory", hint="Lower training.batch_size.")
    app = make_app()
    with Replay(run_dir, [*recorded_run(2), oom]):
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("n")
            await pilot.pause()
            app.attach_run(run_dir)
            await until(pilot, lambda: isinstance(app.screen, TrainScreen))
            screen = app.screen
            await until(pilot, lambda: screen.state == "failed")
            app.switch_mode("student")
            await pilot.pause()
            app.change("student", model="./my-student")
            app.switch_mode("train")
            await pilot.pause()
            header = str(screen.query_one("#plan-summary").render())
    assert header.startswith("./my-student learns"), header


async def test_the_picked_preset_is_still_shown_on_return_to_the_student_step(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_student(app, pilot)
        app.screen.query_one("#preset", Select).value = "24gb"
        await scenes.settle(pilot)
        assert app.plan.training.batch_size == 8
        app.switch_mode("train")
        await pilot.pause()
        app.switch_mode("student")
        await scenes.settle(pilot)
        assert app.screen.query_one("#preset", Select).value == "24gb"
        app.change("training", batch_size=3)  # no preset has that
        app.screen.show_plan()
        await pilot.pause()
        assert app.screen.query_one("#preset", Select).is_blank()


async def test_the_optimizer_help_speaks_of_the_chosen_optimizer(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_student(app, pilot)
        knob = app.screen.query_one("#knob-training-optimizer")
        assert "8-bit" in str(knob.query_one(".help").render())
        knob.query_one(Select).value = "adamw_torch"
        await pilot.pause()
        await pilot.pause()
        assert app.plan.training.optimizer == "adamw_torch"
        assert "8-bit" not in str(knob.query_one(".help").render())


async def test_without_a_gpu_the_memory_breakdown_has_no_cuda_context(project):
    app = StillroomApp(Path("stillroom-plan.toml"), gpu_probe=lambda: None)
    async with app.run_test(size=SIZE) as pilot:
        await open_student(app, pilot)
        gauge = str(app.screen.query_one("FitGauge").render())
        assert "NO GPU TO COMPARE" in gauge and "CUDA" not in gauge
        app.screen.query_one("#card", Select).value = T4[0]  # compared with a T4: it counts
        await scenes.settle(pilot)
        assert "CUDA 0.5" in str(app.screen.query_one("FitGauge").render())


async def test_the_data_steps_problems_name_their_rows_as_the_cli_does(make_app, tiny_student):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await scenes.data(pilot)
        problems = str(app.screen.query_one("#problems").render())
    assert "(row 5)" in problems  # the empty answer
    assert "(row 4)" in problems  # the repeat of row 3


async def test_the_chosen_export_format_is_marked_without_colour(make_app, project):
    """Textual's radio buttons draw ▐●▌ for every choice and tell them apart by colour only."""
    from tui.screens.results import ExportScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        dialog = ExportScreen(Path("runs/t-facts"))
        await open_dialog(app, pilot, dialog)

        def marks() -> list[str]:
            lines = screen_lines(app)
            return [
                line[line.index(f" {name}:") - 3 : line.index(f" {name}:")]
                for name in ("adapter", "merged", "gguf")
                for line in lines
                if f" {name}:" in line
            ]

        assert marks() == ["▐●▌", "▐○▌", "▐○▌"]
        await pilot.press("down", "enter")
        await pilot.pause()
        assert dialog.chosen_format == "merged" and marks() == ["▐○▌", "▐●▌", "▐○▌"]


async def test_an_evaluation_on_too_few_prompts_says_so_and_how_to_use_more(make_app, project):
    from tui.screens.results import EvalScreen

    from .test_results_snapshots import RUN, write_facts_report

    RUN.mkdir(parents=True)
    write_facts_report(RUN)  # three held-out prompts
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        dialog = EvalScreen(RUN)
        await open_dialog(app, pilot, dialog)
        status = str(dialog.query_one("#results-status").render())
    assert "Only 3 prompt(s): too few" in status and "--n" in status
    assert "eval_fraction" in status


async def test_the_train_log_wraps_at_the_width_it_has_and_can_be_unwrapped(make_app, tiny_student):
    """A log line wrapped for 80 columns was cut mid-word once the window narrowed."""
    from engine import events as ev
    from tui.widgets.log_tail import LogTail

    hint = "Lower training.batch_size or student.max_seq_length, then resume the run from its last checkpoint with stillroom train --resume"  # noqa: E501
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await scenes.train(pilot)
        log = app.screen.query_one(LogTail)
        log.add(ev.Warning(message="memory is tight at step 36", hint=hint))
        await pilot.pause()
        widest = max(len(strip.text.rstrip()) for strip in log.lines)
        assert widest <= log.scrollable_content_region.width  # at 80 columns too
        await pilot.resize_terminal(60, 24)
        await pilot.pause()
        await pilot.pause()
        rows = [strip.text.rstrip() for strip in log.lines]
        assert max(len(row) for row in rows) <= log.scrollable_content_region.width
        assert hint in " ".join(rows), rows  # wrapped between words, none cut

        await pilot.press("w")
        await pilot.pause()
        assert not log.wrap and any(hint in strip.text for strip in log.lines)


async def test_a_childs_output_in_the_eval_dialog_wraps_instead_of_being_cut(make_app, project):
    from tui.screens.results import EvalScreen
    from tui.widgets.child_log import ChildLog

    line = "UserWarning: generation flags are not valid and may be ignored: temperature, top_p, top_k; set them in the generation config instead"  # noqa: E501
    Path("runs/t-facts").mkdir(parents=True)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        dialog = EvalScreen(Path("runs/t-facts"))
        await open_dialog(app, pilot, dialog)
        output = dialog.query_one(ChildLog)
        output.add_class("-shown")
        output.post_message(ChildLog.Printed(line))
        await pilot.pause()
        await pilot.pause()
        rows = [getattr(strip, "text", strip).rstrip() for strip in output.lines]
        assert output.region.height >= 2
        assert max(len(row) for row in rows) <= output.scrollable_content_region.width
    assert line in " ".join(rows)


async def test_the_fit_gauge_wraps_a_message_it_cannot_estimate_with(make_app):
    """A "Cannot estimate" message carries the fix in its hint, past the 80th column."""
    message = (
        "Cannot estimate: the model tiny-studnet could not be fetched from the hub. Set "
        "HF_HUB_OFFLINE=1 to use the cache, or point Student model at a local folder."
    )
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_student(app, pilot)
        gauge = app.screen.query_one("FitGauge")
        gauge.show(None, "Tesla T4", message)
        await pilot.pause()
        shown = " ".join(line.strip(" │") for line in screen_lines(app))
    assert "point Student model at a local folder." in shown
