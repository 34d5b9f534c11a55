"""`stillroom demo`: the whole journey headless in a fresh folder, and the folders it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.demo.folder import DATASET, PROMPTS, TOUR_QUESTIONS, knowledge
from engine.demo.teacher import MODEL
from tests.engine.training import stillroom


@pytest.fixture
def demo_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache for the demo student, and nothing fetched."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def test_demo_refuses_a_folder_holding_other_files(demo_env: Path):
    folder = demo_env / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my own notes\n")
    result = stillroom("demo", str(folder), "--no-wizard")
    assert result.returncode == 2
    assert "already holds files that are not the demo's" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_demo_without_a_terminal_points_at_the_headless_tour(demo_env: Path):
    result = stillroom("demo", str(demo_env / "stillroom-demo"))
    assert result.returncode == 2
    assert "--no-wizard" in result.stderr and "Traceback" not in result.stderr
    assert not (demo_env / "stillroom-demo").exists()


@pytest.mark.slow
def test_demo_without_the_wizard_teaches_the_student_the_invented_facts(demo_env: Path):
    """The teacher's answers land once at no cost; the student then knows what the base does not."""
    folder = demo_env / "stillroom-demo"
    result = stillroom("demo", str(folder), "--no-wizard", timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

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
