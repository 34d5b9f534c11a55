"""Replay: how many rows it adds, what it trains on, and the Student step's forgetting warning
(pure rules; the rows themselves are measured on the real model in tests/real_model/)."""

from __future__ import annotations

import pytest

from engine.plan import Plan, plan_from_dict
from engine.replay import SMALL_DATA_SETTINGS, forgetting_risk, replay_count, replay_prompts
from engine.retention import REPLAY_HALF, ControlPrompt, base_answers


@pytest.mark.parametrize(
    ("rows", "fraction", "added"),
    [(64, 0.2, 16), (64, 0.0, 0), (0, 0.2, 0), (1, 0.1, 1), (900, 0.1, 100), (10, 0.5, 10)],
)
def test_replay_makes_its_share_of_the_rows_trained_on(rows, fraction, added):
    assert replay_count(rows, fraction) == added


def test_replay_on_large_data_stops_at_its_cap_and_the_log_says_so(tmp_path, monkeypatch):
    """40,000 rows at 0.2 would add 10,000 replay rows, the same few answers over and over:
    replay adds dataset.replay_max_rows (200) and says it was capped; on small data the base
    model answers only as many prompts as there are replay rows."""
    from engine import events as ev
    from engine.replay import BUDGET, replay_conversations

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    plan = plan_from_dict({"student": {"model": "local/base", "backend": "hf"}})
    assert plan.dataset.replay_max_rows == 200
    answers = {c.prompt: f"Answer to {c.prompt}" for c in REPLAY_HALF}
    base_answers(plan, "hf", REPLAY_HALF, BUDGET, lambda asked: [answers[c.prompt] for c in asked])
    said: list[ev.Event] = []
    rows = replay_conversations(plan, 40_000, 40_001, said.append)
    assert len(rows) == 200
    assert {row.messages[-1]["content"] for row in rows} == set(answers.values())
    lines = [event.line for event in said if isinstance(event, ev.Log)]
    assert any("replay capped at 200 rows" in line and "10,000" in line for line in lines)

    many = tmp_path / "general.txt"
    many.write_text("".join(f"Question {i}?\n" for i in range(300)))
    small = plan_from_dict({"dataset": {"replay_prompts": str(many)}, "student": {"model": "b"}})
    asked: list[str] = []

    def answer(missing):
        asked.extend(c.prompt for c in missing)
        return [f"Answer to {c.prompt}" for c in missing]

    # The base model's generation is the one part left out: the cache is real, nothing else.
    monkeypatch.setattr("engine.replay.base_answers", lambda *a: base_answers(*a[:4], answer))
    rows = replay_conversations(small, 64, 65, said.append)  # 16 replay rows: 16 prompts asked
    assert len(rows) == 16 and len(asked) == 16


def test_replay_is_on_by_default_and_a_file_replaces_the_built_in_prompts(tmp_path):
    assert Plan().dataset.replay_fraction > 0
    assert replay_prompts(Plan()) == REPLAY_HALF
    own = tmp_path / "general.txt"
    own.write_text("Tell me a joke.\nWhat is rain?\n")
    plan = plan_from_dict({"dataset": {"replay_prompts": str(own)}})
    assert replay_prompts(plan) == (
        ControlPrompt("Tell me a joke."),
        ControlPrompt("What is rain?"),
    )


def plan(replay: float = 0.2, lora: dict | None = None, **training) -> Plan:
    data = {"dataset": {"replay_fraction": replay}, "training": training, "lora": lora or {}}
    return plan_from_dict(data)


SUGGESTED = {**SMALL_DATA_SETTINGS["training"], "lora": SMALL_DATA_SETTINGS["lora"]}


def test_the_student_step_warns_in_the_range_that_forgets_and_says_what_works():
    risky = forgetting_risk(plan(0.0, max_steps=18, batch_size=4, learning_rate=2e-3), 64)
    assert risky is not None and "without replay" in risky
    rate = SMALL_DATA_SETTINGS["training"]["learning_rate"]
    assert f"training.learning_rate = {rate:g}" in risky
    assert f"lora.r = {SMALL_DATA_SETTINGS['lora']['r']}" in risky
    assert "dataset.replay_fraction" in risky
    wide = forgetting_risk(plan(**SMALL_DATA_SETTINGS["training"]), 64)  # rank 16
    assert wide is not None
    many = forgetting_risk(plan(epochs=20, learning_rate=2e-4), 64)
    assert many is not None and "20.0 times" in many


def test_no_warning_for_the_suggested_settings_much_data_or_unknown_data():
    assert forgetting_risk(plan(**SUGGESTED), 64) is None
    assert forgetting_risk(plan(0.0, **SUGGESTED), 64) is not None  # replay off
    assert forgetting_risk(plan(0.0, epochs=20, learning_rate=2e-3), 50_000) is None
    assert forgetting_risk(plan(0.0, epochs=20, learning_rate=2e-3), None) is None


def test_a_missing_replay_prompt_file_stops_training_before_the_model_loads(
    tiny_model_dir, tmp_path
):
    """The run ends with a dataset error naming the file and what to write in it."""
    from engine import events as ev
    from tests.engine.training import events_of, run_dir_from, stillroom, write_facts, write_plan

    plan = write_plan(tmp_path, tiny_model_dir, write_facts(tmp_path), max_steps=2)
    missing = tmp_path / "general.txt"
    plan.write_text(
        plan.read_text().replace(
            "replay_fraction = 0.0", f'replay_fraction = 0.2\nreplay_prompts = "{missing}"'
        )
    )
    result = stillroom("train", str(plan))
    assert result.returncode != 0
    (error,) = events_of(run_dir_from(result.stdout), ev.Error)
    assert error.kind == "dataset" and str(missing) in error.message
    assert "one prompt a line" in error.hint
    assert "Traceback" not in result.stdout + result.stderr
