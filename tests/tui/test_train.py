"""The Train step against replayed runs: progress, loss, GPU, errors, cancel, re-attach, crash."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from engine import events as ev
from engine.runs import CANCEL_FILE
from tui.screens.confirm import ConfirmScreen
from tui.screens.train import TrainScreen
from tui.widgets.gpu_panel import NO_GPU, GpuPanel
from tui.widgets.log_tail import LogTail
from tui.widgets.loss_chart import LossChart

from .conftest import SIZE
from .replayer import Replay, make_run_dir, recorded_run, step_event
from .scenes import TINY, prepare, until

pytestmark = pytest.mark.anyio


def text_of(screen: TrainScreen, selector: str) -> str:
    return str(screen.query_one(selector).render())


def log_text(screen: TrainScreen) -> str:
    return "\n".join(line.text for line in screen.query_one(LogTail).lines)


async def open_train(pilot) -> TrainScreen:
    """From the welcome screen to the Train step of a new plan."""
    await pilot.press("n")
    await pilot.pause()
    pilot.app.switch_mode("train")
    await pilot.pause()
    assert isinstance(pilot.app.screen, TrainScreen)
    return pilot.app.screen


async def test_the_student_step_leads_to_train_and_the_plan_summary(
    make_app, project, tiny_model_dir
):
    prepare(project, tiny_model_dir)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.pause()
        app.change("student", model=TINY)
        app.switch_mode("student")
        await pilot.pause()
        await pilot.press("ctrl+n")
        await until(pilot, lambda: isinstance(app.screen, TrainScreen))
        screen = app.screen
        await until(pilot, lambda: screen.query_one(GpuPanel).absent)
        assert f"{TINY} learns yahma/alpaca-cleaned" in text_of(
            screen, "#plan-summary"
        )
        assert "ctrl+r starts training" in text_of(screen, "#state")
        assert str(screen.query_one(GpuPanel).render()) == NO_GPU
        assert app.step == "train"


async def test_progress_eta_tokens_and_loss_points_arrive_as_written(make_app, project):
    run_dir = make_run_dir(Path("runs"))
    app = make_app()
    with Replay(run_dir, recorded_run(36), pace_s=0.02) as replay:
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_train(pilot)
            await until(pilot, lambda: screen.last_step is not None and screen.last_step.step >= 3)
            early = screen.last_step.step
            progress = text_of(screen, "#progress")
            assert f"{early}/60 steps" in progress and "tok/s" in progress and "ETA" in progress
            await until(pilot, lambda: screen.last_step.step == 36)
            replay.wait_written(36 * 2 + 3)
            assert "36/60 steps" in text_of(screen, "#progress")
            assert "5,156 tok/s · ETA 0:38" in text_of(screen, "#progress")
            chart = screen.query_one(LossChart)
            assert [p.step for p in chart.points] == list(range(1, 37))  # none replaced
            assert chart.border_title.startswith(f"loss {step_event(36).loss:.4f}")
            assert screen.state == "running"
            assert "max_steps=60 x 8 samples" in log_text(screen)


async def test_model_flops_utilisation_stands_next_to_the_token_rate(make_app, project):
    run_dir = make_run_dir(Path("runs"))
    events = recorded_run(3)
    events[-2] = replace(events[-2], mfu=0.0941)  # the last step (a GPU sample follows it)
    app = make_app()
    with Replay(run_dir, events):
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_train(pilot)
            await until(pilot, lambda: screen.last_step is not None and screen.last_step.step == 3)
            assert "5,123 tok/s · MFU 9.4%" in text_of(screen, "#progress")


async def test_gpu_panel_splits_this_runs_memory_from_others(make_app, project):
    run_dir = make_run_dir(Path("runs"))
    app = make_app()
    with Replay(run_dir, recorded_run(12)):
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await open_train(pilot)
            panel = screen.query_one(GpuPanel)
            await until(pilot, lambda: panel.sample is not None and screen.last_step.step == 12)
            assert panel.own_mb == pytest.approx(18400.0)
            assert panel.others_mb == pytest.approx(6720.0)  # the kernel plus unlisted memory
            shown = str(panel.render())
            assert "24.5/79.6 GB" in shown
            assert "this run 18.0 GB" in shown and "others 6.6 GB (1 proc)" in shown
            assert "util 96% · 63°C · 412 W" in shown


async def test_a_run_on_two_cards_shows_a_bar_for_each_card_it_uses(make_app, project):
    """You should see GPU0 and GPU1 each with this run's memory, the idle GPU2 left out."""
    run_dir = make_run_dir(Path("runs"))
    cards = [
        ev.GpuSample(
            index=i,
            name="NVIDIA H200",
            mem_used_mb=used,
            mem_total_mb=143771.0,
            util_pct=util,
            processes=(ev.GpuProcess(pid=100 + i, mem_used_mb=used, own=own),),
        )
        for i, used, util, own in ((0, 20480.0, 97.0, True), (1, 19456.0, 95.0, True),
                                   (2, 1024.0, 0.0, False))
    ]  # fmt: skip
    app = make_app()
    with Replay(run_dir, [*recorded_run(3), *cards]) as replay:
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await open_train(pilot)
            panel = screen.query_one(GpuPanel)
            await until(pilot, lambda: len(panel.cards) == 3)
            replay.wait_written(len(recorded_run(3)) + 3)
            shown = str(panel.render())
            assert "GPU0 " in shown and "20.0/140.4 GB  97%" in shown
            assert "GPU1 " in shown and "19.0/140.4 GB  95%" in shown
            assert "GPU2" not in shown
            assert "this run 39.0 GB" in shown and "2 cards" in shown


async def test_an_error_shows_its_message_and_hint_up_front(make_app, project):
    run_dir = make_run_dir(Path("runs"))
    oom = ev.Error(kind="oom", message="CUDA out of memory at step 3 (14.6 of 15.0 GB)",
                   hint="Lower training.batch_size to 1 or student.max_seq_length to 1024.")  # fmt: skip
    app = make_app()
    with Replay(run_dir, [*recorded_run(2), oom]):
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_train(pilot)
            app.attach_run(run_dir)  # it has already failed, so it is not found as live
            await until(pilot, lambda: screen.state == "failed")
            problem = screen.query_one("#problem")
            assert problem.display and problem.has_class("-error")
            shown = text_of(screen, "#problem")
            assert "✗ oom: CUDA out of memory" in shown and "→ Lower training.batch_size" in shown
            assert "ctrl+r starts a new run" in text_of(screen, "#state")
            assert screen.check_action("start", ()) and not screen.check_action("cancel_run", ())


async def test_cancel_asks_first_then_writes_the_request_and_shows_the_adapter(make_app, project):
    run_dir = make_run_dir(Path("runs"))
    app = make_app()
    with Replay(run_dir, recorded_run(5)) as replay:
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_train(pilot)
            await until(pilot, lambda: screen.last_step is not None and screen.last_step.step == 5)
            await pilot.press("ctrl+x")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            dialog = app.screen
            assert "at the end of the current step?" in str(dialog.query_one(".question").render())
            assert "5 steps are done" in str(dialog.query_one(".detail").render())
            await pilot.press("n")
            await pilot.pause()
            assert app.screen is screen and not (run_dir / CANCEL_FILE).exists()
            await pilot.press("ctrl+x")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await until(pilot, lambda: screen.state == "cancelled")
            assert (run_dir / CANCEL_FILE).exists() and replay._child.wait(5) is not None
            assert f"cancelled at step 5. Adapter saved: {run_dir / 'adapter'}" in text_of(
                screen, "#state"
            )


async def test_reopening_the_app_reattaches_to_the_live_run_of_the_plan(make_app, project):
    run_dir = make_run_dir(Path("runs"))
    app = make_app()
    with Replay(run_dir, recorded_run(4)):
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await until(pilot, lambda: app.screen.live_run is not None)
            assert "still training" in text_of(app.screen, "#live")
            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, TrainScreen))
            screen = app.screen
            await until(pilot, lambda: screen.last_step is not None and screen.last_step.step == 4)
            assert screen.run_dir == run_dir and screen.state == "running"
            assert not screen.check_action("start", ())  # no second run while one trains
        # the draft now opens at the Train step, which finds the run by itself
        again = make_app()
        async with again.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: isinstance(again.screen, TrainScreen))
            screen = again.screen
            await until(pilot, lambda: screen.last_step is not None and screen.last_step.step == 4)
            assert screen.run_dir.resolve() == run_dir.resolve()
            assert sorted(p.name for p in Path("runs").iterdir()) == [run_dir.name]


async def test_a_run_whose_process_died_is_shown_as_crashed_with_its_log(make_app, project):
    run_dir = make_run_dir(Path("runs"))
    log = "loading shards\nSegmentation fault (core dumped)\n"
    app = make_app()
    with Replay(run_dir, recorded_run(3), alive=False, log=log):
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_train(pilot)
            app.attach_run(run_dir)
            await until(pilot, lambda: screen.state == "crashed")
            assert "✗ crashed: the training process ended" in text_of(screen, "#problem")
            assert f"stillroom train --resume {run_dir}" in text_of(screen, "#problem")
            assert "Segmentation fault (core dumped)" in log_text(screen)


@pytest.mark.slow
async def test_ctrl_r_trains_the_tiny_model_to_the_end_in_a_detached_child(
    make_app, project, tiny_model_dir
):
    from engine.plan import load_plan
    from tests.engine.training import write_facts, write_plan

    plan = load_plan(write_plan(project, tiny_model_dir, write_facts(project), max_steps=8))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.pause()
        app.set_plan(plan)
        app.switch_mode("train")
        await pilot.pause()
        screen = app.screen
        await until(pilot, lambda: screen.state == "ready")
        await pilot.press("ctrl+r")
        await until(pilot, lambda: screen.state == "running", timeout_s=60)
        assert not screen.check_action("start", ())
        await until(pilot, lambda: screen.ending is not None, timeout_s=90)
        assert screen.state == "finished", text_of(screen, "#problem")
        assert "finished 8 steps" in text_of(screen, "#state")
        assert len(screen.query_one(LossChart).points) == 8
        assert (screen.run_dir / "adapter" / "adapter_config.json").is_file()
        assert str(screen.query_one(GpuPanel).render()) == NO_GPU
