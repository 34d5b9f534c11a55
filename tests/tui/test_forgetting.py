"""What the wizard says about forgetting: the replay rows on the Data step, a warning on the
Student step while the plan is in the range that forgets, and the last evaluation on Train."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from textual.widgets import Select, Static

from engine.evaluate import headline
from engine.replay import SMALL_DATA_SETTINGS

from .conftest import SIZE
from .scenes import until

pytestmark = pytest.mark.anyio


def facts_file(project: Path, rows: int = 64) -> Path:
    path = project / "facts.jsonl"
    lines = [json.dumps({"instruction": f"Question {i}?", "output": f"Answer {i}."}) for i in range(rows)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def shown(screen, selector: str) -> str:
    widget = screen.query_one(selector, Static)
    return str(widget.render()) if widget.display else ""


async def read_on_the_data_step(app, pilot, data: Path) -> None:
    """Past Welcome to the Data step, with ``data`` read (nothing held out)."""
    await pilot.press("n")
    await pilot.pause()
    app.change("dataset", source=data.name, eval_fraction=0.0)
    app.switch_mode("data")
    await pilot.pause()
    await app.workers.wait_for_complete()
    await until(pilot, lambda: "usable" in shown(app.screen, "#summary"))


async def test_the_data_step_counts_the_replay_rows_and_the_student_step_warns(make_app, project):
    """64 rows and the default replay share: 16 replay rows on the Data step; 18 steps at lr 2e-3
    without replay warns on the Student step with the measured settings, which clear it."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await read_on_the_data_step(app, pilot, facts_file(project))
        assert "+ 16 replay rows written by the base model" in shown(app.screen, "#summary")

        app.change("dataset", replay_fraction=0.0)
        app.change("training", max_steps=18, batch_size=4, learning_rate=2e-3)
        app.switch_mode("student")
        await pilot.pause()
        warning = shown(app.screen, "#forgetting")
        assert "64 rows" in warning and "without replay" in warning and "forget" in warning

        app.change("dataset", replay_fraction=0.2)
        app.change("training", max_steps=None, **SMALL_DATA_SETTINGS["training"])
        app.change("lora", **SMALL_DATA_SETTINGS["lora"])
        app.screen.show_plan()
        await pilot.pause()
        assert shown(app.screen, "#forgetting") == ""


async def test_the_data_steps_replay_knob_writes_the_plan(make_app, project):
    """Replay is chosen on the Data step (off, 0.1, 0.2, 0.3): the choice lands in the plan file
    and the replay line follows it; a plan's own share outside the list is shown as it is, and
    on large data the line says replay is capped."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await read_on_the_data_step(app, pilot, facts_file(project))
        knob = app.screen.query_one("#knob-dataset-replay_fraction Select", Select)
        assert knob.value == 0.2

        knob.focus()
        await pilot.press("enter", "down", "enter")  # 0.2 -> 0.3
        await pilot.pause()
        assert app.plan.dataset.replay_fraction == 0.3
        assert "replay_fraction = 0.3" in Path("stillroom-plan.toml").read_text()
        assert "+ 27 replay rows written by the base model" in shown(app.screen, "#summary")

        await pilot.press("enter", "up", "up", "up", "enter")  # 0.3 -> off
        await pilot.pause()
        assert app.plan.dataset.replay_fraction == 0.0
        assert "replay rows" not in shown(app.screen, "#summary")

        app.change("dataset", replay_fraction=0.15)
        app.screen.show_plan()
        await pilot.pause()
        assert knob.value == 0.15 and app.plan.dataset.replay_fraction == 0.15

        big = facts_file(project, rows=2000)  # 0.15 of 2,000 would be 353 rows: capped
        app.change("dataset", source=big.name)
        app.screen.action_inspect()
        await until(pilot, lambda: "2000 usable" in shown(app.screen, "#summary"))
        summary = shown(app.screen, "#summary")
        assert "+ 200 replay rows" in summary and "capped at dataset.replay_max_rows" in summary


async def test_the_train_step_shows_the_last_evaluation(make_app, project, facts_run):
    """A finished run with an evaluation shows its headline under the state."""
    from tui.screens.train import TrainScreen

    run = project / "runs" / facts_run.name
    shutil.copytree(facts_run, run, ignore=shutil.ignore_patterns("eval"))
    report = {"rows": 6, "items": [{"answers": {"student": {"f1": 1.0}}}] * 5
              + [{"answers": {"student": {"f1": 0.0}}}],
              "retention": {"prompts": 15, "kept": 14}}  # fmt: skip
    (run / "eval").mkdir()
    (run / "eval" / "report.json").write_text(json.dumps(report))
    app = make_app()
    app.attach_request = run
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.pause()
        app.switch_mode("train")
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        await until(pilot, lambda: screen.state == "finished", timeout_s=60)
        state = shown(screen, "#state")
        assert f"Last evaluation: {headline(report)}." in state
        assert "learned 5 of 6, kept 14 of 15" in state
