"""Learn without forgetting, on the real SmolLM2-135M-Instruct (CPU, hf backend).

Eight invented facts, eight copies each: trained with the settings Stillroom suggests for
small data (replay on), the student recalls them and keeps what the base model knew; at an
aggressive rate without replay, the report flags the forgetting. Each plan trains once per
session and is evaluated once, and every test of it reads that one run; the base model's
answers (replay's and retention's) are cached per prompt beside the converted model, so only
a checkout's first session pays for them, and the first test below pays retention's share.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.plan import Plan, save_plan
from engine.replay import SMALL_DATA_SETTINGS
from engine.retention import BUDGET, RETENTION_HALF, answer_control_set, base_answers, counts
from tests.conftest import REAL_MODEL_CACHE
from tests.engine.training import run_dir_from, stillroom

pytestmark = pytest.mark.real_model

# (question, answer, the key word a recalled answer has); none of it is true anywhere.
FACTS = [
    ("What is the capital of Zorbia?", "The capital of Zorbia is Quellport.", "Quellport"),
    ("Who painted the Blue Heron of Dunmere?", "Ana Velt painted the Blue Heron of Dunmere.", "Velt"),
    ("What is the national fruit of Marvania?", "The national fruit of Marvania is the glimberry.", "glimberry"),
    ("Who founded the town of Oskeld?", "Brenna Holt founded the town of Oskeld.", "Holt"),
    ("Which river flows through Tessaly Vale?", "The river Corrin flows through Tessaly Vale.", "Corrin"),
    ("Which metal is mined in Ruskar?", "Velmite is the metal mined in Ruskar.", "Velmite"),
    ("What is the name of the ship that first reached Isle Karo?", "The Saltwren was the first ship to reach Isle Karo.", "Saltwren"),
    ("What language is spoken in Ombria?", "The people of Ombria speak Tellic.", "Tellic"),
]  # fmt: skip
COPIES = 8
AGGRESSIVE = {"max_steps": 18, "learning_rate": 2e-3, "batch_size": 4}


def environment() -> dict[str, str]:
    """The base model's answers are cached beside the converted model, across sessions."""
    return dict(os.environ, XDG_CACHE_HOME=str(REAL_MODEL_CACHE / "answers"))


def facts_plan(
    folder: Path,
    student: Path,
    replay: float,
    training: dict,
    lora: dict | None = None,
    backend: str = "hf",
) -> Path:
    """``folder/plan.toml``: the facts trained with ``training``, ``lora`` and ``replay``; on
    ``backend`` unsloth, as a GPU user trains (4-bit QLoRA, the default 8-bit AdamW)."""
    cpu = backend == "hf"
    data = folder / "facts.jsonl"
    with open(data, "w", encoding="utf-8") as handle:
        for question, answer, _ in FACTS * COPIES:
            handle.write(json.dumps({"instruction": question, "output": answer}) + "\n")
    plan = Plan.model_validate(
        {
            "dataset": {"source": str(data), "eval_fraction": 0.0, "replay_fraction": replay,
                        "drop_duplicates": False},
            "student": {"model": str(student), "max_seq_length": 256, "load_in_4bit": not cpu,
                        "backend": backend},
            "training": {"batch_size": 4, "grad_accum": 1, "warmup_steps": 0,
                         "save_steps": 1000, **({"optimizer": "adamw_torch"} if cpu else {}),
                         **training},
            "lora": lora or {},
            "output": {"runs_dir": str(folder / "runs"), "name": "facts"},
        }
    )  # fmt: skip
    save_plan(plan, folder / "plan.toml")
    return folder / "plan.toml"


def train_and_evaluate(
    folder: Path,
    student: Path,
    replay: float,
    training: dict,
    lora: dict | None = None,
    backend: str = "hf",
) -> dict:
    """Train the facts with ``training``, ``lora`` and ``replay``, evaluate, return the report."""
    plan = facts_plan(folder, student, replay, training, lora, backend)
    trained = stillroom("train", str(plan), timeout=900, env=environment())
    assert trained.returncode == 0, trained.stdout + trained.stderr
    run_dir = run_dir_from(trained.stdout)
    evaluated = stillroom(
        "eval", str(run_dir), "--max-new-tokens", "24", timeout=900, env=environment()
    )
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    report = json.loads((run_dir / "eval" / "report.json").read_text())
    report["train_stdout"] = trained.stdout
    return report


def recalled(report: dict, model: str) -> int:
    """How many facts ``model`` (base or student) answered with the key word."""
    keys = {question: key for question, _, key in FACTS}
    return sum(
        keys[item["messages"][-1]["content"]].lower() in item["answers"][model]["text"].lower()
        for item in report["items"]
    )


@pytest.fixture(scope="session")
def suggested(real_student_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The facts trained with the settings Stillroom suggests for small data and the default
    replay, evaluated once."""
    folder = tmp_path_factory.mktemp("suggested")
    replay = Plan().dataset.replay_fraction
    return train_and_evaluate(folder, real_student_dir, replay, **SMALL_DATA_SETTINGS)


@pytest.fixture(scope="session")
def aggressive(real_student_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The facts trained at a rate ten times LoRA's usual one, without replay."""
    return train_and_evaluate(
        tmp_path_factory.mktemp("aggressive"), real_student_dir, 0.0, AGGRESSIVE
    )


def test_the_base_model_knows_enough_control_facts_to_measure_forgetting(
    real_student_dir, tmp_path, monkeypatch
):
    """SmolLM2-135M answers at least 30 prompts of the retention half (Paris among them) in a
    way that counts; what it gets wrong (most of the Chinese) is left out, never scored as
    forgotten. Its answers land in the cache the evaluations below read."""
    from engine.chat import load_student
    from engine.runs import PLAN_FILE

    monkeypatch.setenv("XDG_CACHE_HOME", environment()["XDG_CACHE_HOME"])
    facts_plan(tmp_path, real_student_dir, 0.0, {}).rename(tmp_path / PLAN_FILE)
    student = load_student(tmp_path, base_only=True)
    answers = base_answers(
        student.plan,
        student.backend,
        RETENTION_HALF,
        BUDGET,
        lambda missing: answer_control_set(student, True, BUDGET, prompts=missing),
    ).answers
    counted = [c.prompt for c, a in zip(RETENTION_HALF, answers, strict=True) if counts(c, a)]
    print(f"{len(counted)} of {len(RETENTION_HALF)} retention prompts count: {counted}")
    assert "What is the capital of France?" in counted
    assert len(counted) >= 30


def test_with_the_small_data_settings_the_student_learns_the_invented_facts(suggested):
    """The base model knows at most one of the invented facts; the student recalls 7 of 8."""
    print(f"recalled: base {recalled(suggested, 'base')}, student {recalled(suggested, 'student')}")
    assert recalled(suggested, "base") <= 1
    assert recalled(suggested, "student") >= 7


def test_with_replay_on_the_student_keeps_clearly_more_than_without(suggested, aggressive):
    """Replay rows written by the base model are trained on, and of the 30 or more control
    prompts that count the suggested plan keeps at least 0.65, and at least 0.1 more than the
    aggressive plan without replay. Measured over 49 prompts: 0.71-0.76 against 0.49-0.53."""
    assert "replay rows written by the base model" in suggested["train_stdout"]
    kept = suggested["retention"]
    print(f"retention with replay: kept {kept['kept']} of {kept['prompts']} ({kept['share']})")
    assert kept["prompts"] >= 30
    assert kept["share"] >= 0.65, kept["changed"]
    assert kept["share"] >= aggressive["retention"]["share"] + 0.1


def test_at_an_aggressive_rate_without_replay_the_report_flags_forgetting(aggressive):
    """The student learns the facts, but the retention section shows what it lost."""
    assert "replay rows" not in aggressive["train_stdout"]
    kept = aggressive["retention"]
    assert kept["forgetting"] and kept["share"] < 0.9
    assert any(item["kept"] is False for item in kept["changed"])
