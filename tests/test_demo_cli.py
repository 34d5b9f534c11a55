"""`stillroom demo`: the whole journey headless in a fresh folder, and the folders it refuses."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from engine.demo.folder import DATASET, PROMPTS, TOUR_QUESTIONS, knowledge
from engine.demo.teacher import MODEL
from engine.demo_student import MODEL_NAME, WHEEL, converted_folder
from tests.conftest import REAL_MODEL_CACHE
from tests.engine.training import stillroom


@pytest.fixture
def demo_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache for the demo student; every call also says --offline: nothing fetched."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


@pytest.fixture
def demo_student(demo_env: Path, request: pytest.FixtureRequest, monkeypatch) -> str:
    """The real SmolLM2 where the real-model tier has it (its cache becomes Stillroom's),
    else the tiny random model: the name the demo will say it uses."""
    wheel = REAL_MODEL_CACHE / "wheels" / WHEEL
    if not (wheel.is_file() or (converted_folder(REAL_MODEL_CACHE) / "config.json").is_file()):
        return "random weights"
    request.getfixturevalue("real_student_dir")  # converted once per checkout
    monkeypatch.setenv("XDG_CACHE_HOME", str(REAL_MODEL_CACHE.parent))
    return MODEL_NAME


def test_demo_refuses_a_folder_holding_other_files(demo_env: Path):
    folder = demo_env / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my own notes\n")
    result = stillroom("demo", str(folder), "--no-wizard", "--offline")
    assert result.returncode == 2
    assert "already holds files that are not the demo's" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_demo_without_a_terminal_points_at_the_headless_tour(demo_env: Path):
    result = stillroom("demo", str(demo_env / "stillroom-demo"), "--offline")
    assert result.returncode == 2
    assert "--no-wizard" in result.stderr and "Traceback" not in result.stderr
    assert not (demo_env / "stillroom-demo").exists()


@pytest.mark.slow
def test_demo_without_the_wizard_teaches_the_student_the_invented_facts(
    demo_env: Path, demo_student: str
):
    """The teacher's answers land once at no cost; the student then knows what the base does not
    (the real SmolLM2 where the test environment has it, else the tiny random model)."""
    folder = demo_env / "stillroom-demo"
    result = stillroom("demo", str(folder), "--no-wizard", "--offline", timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    student_line = next(line for line in result.stdout.splitlines() if line.startswith("student:"))
    assert demo_student in student_line

    records = [json.loads(line) for line in (folder / DATASET).read_text().splitlines()]
    answered = [r for r in records if r.get("meta", {}).get("model") == MODEL]
    asked = [m["content"] for r in answered for m in r["messages"] if m["role"] == "user"]
    prompts = (folder / PROMPTS).read_text().splitlines()
    assert sorted(asked) == sorted(prompts)  # each prompt answered exactly once
    assert all(r["meta"]["cost_usd"] == 0 for r in answered)
    assert "$0.0000" in result.stderr  # the generation summary: the cost

    known = knowledge()
    for question in TOUR_QUESTIONS:
        block = result.stdout.split(f"Q: {question}\n", 1)[1].split("\n\n", 1)[0]
        lines = dict(map(str.strip, line.split(": ", 1)) for line in block.splitlines())
        assert known[question] in lines["student"], block
        assert known[question] not in lines["base"], block

    again = stillroom("demo", str(folder), "--no-wizard", "--offline", timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "The student learned the textbook in" in again.stdout  # not trained a second time
    assert len(list((folder / "runs").iterdir())) == 1 and "Before and after" in again.stdout


def test_a_rerun_of_the_tour_shows_the_finished_run_rather_than_training_again(
    facts_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The headless tour run again reuses the run that finished training the same plan on the
    same rows; new rows, or another setting, train again."""
    from engine import runs
    from engine.plan import save_plan
    from engine.run_dir import RunDir
    from tui.commands.demo import trained_already
    from tui.draft import write_draft

    monkeypatch.chdir(tmp_path)
    shutil.copytree(facts_run, tmp_path / "runs" / facts_run.name)
    run = runs.list_runs("runs")[0]
    plan = RunDir(run.path).plan()
    data = tmp_path / "facts.jsonl"
    shutil.copy(plan.dataset.source, data)
    os.utime(data, (run.started_at - 60, run.started_at - 60))  # written before the run began
    plan.dataset.source = "facts.jsonl"  # as the demo's draft names it, relative
    plan.output.runs_dir = "runs"
    write_draft(tmp_path / "plan.toml", plan, "train")
    copied = tmp_path / "runs" / facts_run.name
    # the copy's own plan names the copied data, as the demo's run would
    save_plan(runs.absolute_paths(plan), copied / "plan.toml")
    assert trained_already(tmp_path / "plan.toml") == Path(run.path)

    data.write_text(data.read_text() + data.read_text().splitlines()[0] + "\n")  # a new row
    assert trained_already(tmp_path / "plan.toml") is None
    os.utime(data, (run.started_at - 60, run.started_at - 60))
    plan.training.learning_rate = 5e-3
    write_draft(tmp_path / "plan.toml", plan, "train")
    assert trained_already(tmp_path / "plan.toml") is None
