"""Learn without forgetting on the Unsloth path: the real SmolLM2-135M-Instruct in 4-bit on a
CUDA GPU, as a GPU user trains it, with the suggested small-data settings (replay on) and the
aggressive plan (no replay), each trained and evaluated once. Prints the figures docs/gpu.md
reports.
"""

from __future__ import annotations

import json

import pytest

from engine.plan import Plan
from engine.replay import SMALL_DATA_SETTINGS
from tests.real_model.test_forgetting import AGGRESSIVE, recalled, train_and_evaluate

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.real_model,
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.fixture(scope="module")
def suggested(real_student_dir, tmp_path_factory) -> dict:
    replay = Plan().dataset.replay_fraction
    folder = tmp_path_factory.mktemp("suggested-unsloth")
    return train_and_evaluate(
        folder, real_student_dir, replay, **SMALL_DATA_SETTINGS, backend="unsloth"
    )


@pytest.fixture(scope="module")
def aggressive(real_student_dir, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("aggressive-unsloth")
    return train_and_evaluate(folder, real_student_dir, 0.0, AGGRESSIVE, backend="unsloth")


def _figures(report: dict) -> dict:
    kept = report["retention"]
    return {
        "recall_base": recalled(report, "base"),
        "recall_student": recalled(report, "student"),
        "kept": kept["kept"],
        "prompts": kept["prompts"],
        "share": kept["share"],
        "flagged": kept["forgetting"],
    }


def test_on_unsloth_the_student_learns_the_facts_and_replay_keeps_clearly_more(
    suggested, aggressive
):
    """The base knows at most one invented fact and the student recalls 7 of 8; with replay
    it keeps at least 0.65 of the control answers that count, 0.1 more than without."""
    print(json.dumps({"suggested": _figures(suggested), "aggressive": _figures(aggressive)}))
    assert "via unsloth" in suggested["train_stdout"], suggested["train_stdout"][-2000:]
    assert recalled(suggested, "base") <= 1
    assert recalled(suggested, "student") >= 7
    assert suggested["retention"]["share"] >= 0.65, suggested["retention"]["changed"]
    assert suggested["retention"]["share"] >= aggressive["retention"]["share"] + 0.1
    assert aggressive["retention"]["forgetting"]
