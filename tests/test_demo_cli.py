"""`stillroom demo`: the whole journey headless in a fresh folder, and the folders it refuses."""

from __future__ import annotations

import json
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
