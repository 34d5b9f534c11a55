"""The unsloth backend on a real NVIDIA card: it learns, masks and stops.

A small random-init Qwen2 (head size 64, like the real models) with the test
tokenizer learns six facts through the real detached child; the adapter is then
loaded on a 4-bit base with plain transformers + PEFT and must recall them,
each answer ending with the end-of-turn token.
"""

from __future__ import annotations

import pytest

from engine import events as ev
from tests.engine.training import (
    FACTS,
    events_of,
    generate,
    run_dir_from,
    small_qwen2,
    stillroom,
    write_facts,
    write_plan,
)

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    return small_qwen2(tmp_path_factory.mktemp("small-qwen2"))


def test_unsloth_learns_facts_and_stops(small_model, tmp_path):
    plan = write_plan(
        tmp_path,
        small_model,
        write_facts(tmp_path, copies=8),
        max_steps=300,
        batch_size=8,
        learning_rate=3e-3,
        warmup_steps=10,
        save_steps=1000,
    )
    result = stillroom("train", str(plan), timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = run_dir_from(result.stdout)
    (started,) = events_of(run_dir, ev.Started)
    assert started.backend == "unsloth"
    # training.gpus = "auto": every visible card trains, one rank each.
    cards = torch.cuda.device_count()
    ranks = f"{cards} x " if cards > 1 else ""
    assert started.device.startswith(ranks) and (cards > 1) == (" x " in started.device)
    logs = [e.line for e in events_of(run_dir, ev.Log)]
    assert any(line.startswith("gradient checkpointing ") for line in logs), logs
    assert any(line.startswith("Stillroom's own work per step") for line in logs), logs
    from transformers import BitsAndBytesConfig

    quantized = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    answers = {
        q: generate(
            small_model, q, run_dir / "adapter", quantization_config=quantized, device_map={"": 0}
        )
        for q, _ in FACTS
    }
    recalled = [q for q, a in FACTS if answers[q].startswith(a) and "<|im_end|>" in answers[q]]
    assert len(recalled) >= 5, answers
