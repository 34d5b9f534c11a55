"""Chat and merged export through the Unsloth path on a random-init Qwen2.5-1.5B-shaped model.

Prints time to first token and streaming tokens/s (run with ``-s`` to see them).
The weights are random, so answers are noise: the test checks the path, not the text.
"""

from __future__ import annotations

import pytest

from tests.engine.training import FACTS, run_dir_from, stillroom, write_facts, write_plan

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory):
    """A short Unsloth run on the 1.5B-shaped model, so the run has an adapter."""
    from engine.tiny_model import QWEN25_1_5B, build_tiny_model

    folder = tmp_path_factory.mktemp("qwen25-1.5b-shape")
    model = build_tiny_model(folder / "model", dtype="bfloat16", **QWEN25_1_5B)
    plan = write_plan(folder, model, write_facts(folder), max_steps=10, save_steps=1000)
    result = stillroom("train", str(plan), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return run_dir_from(result.stdout)


def test_chat_streams_through_unsloth(gpu_run, capfd):
    """Answers stream, and no answer logs transformers' warning about max_length (Unsloth sets
    it to the context length; it filled train.log once per replay answer)."""
    from engine.chat import load_student

    student = load_student(gpu_run)
    assert student.backend == "unsloth"
    messages = [{"role": "user", "content": "What is the capital of Zorbia?"}]
    student.answer(messages, max_new_tokens=8)  # warm-up: kernels compile on first use
    generation = student.stream(messages, max_new_tokens=256)
    pieces = list(generation)
    answer = generation.answer
    assert pieces and answer.tokens > 0 and (answer.cut or answer.ended_cleanly)
    base = student.answer(messages, base=True, max_new_tokens=32)
    assert base.tokens > 0
    assert "seem to have been set" not in capfd.readouterr().err
    print(f"\nunsloth chat: ttft {answer.ttft_s:.3f} s, {answer.tokens_per_s:.1f} tokens/s")


def test_merged_export_through_unsloth_loads_with_plain_transformers(gpu_run, tmp_path):
    from transformers import AutoModelForCausalLM

    from engine.export import export

    result = export(gpu_run, "merged", tmp_path / "merged")
    assert (result.path / "parity.json").is_file()
    model = AutoModelForCausalLM.from_pretrained(str(result.path))
    assert not hasattr(model, "peft_config")
    print(f"\nmerged export parity: {result.parity.differing} of 3 greedy answers differ")


@pytest.fixture(scope="module")
def facts_on_gpu(tmp_path_factory):
    """A small Qwen2 (head size 64, as Unsloth's kernels take it) trained on the facts through
    Unsloth in 4-bit, so its answers are the facts: peaked, unlike random weights'."""
    from engine.tiny_model import build_tiny_model

    folder = tmp_path_factory.mktemp("facts-unsloth")
    model = build_tiny_model(
        folder / "model",
        dtype="bfloat16",
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    plan = write_plan(
        folder, model, write_facts(folder), max_steps=150, batch_size=8, warmup_steps=10,
        save_steps=1000,
    )  # fmt: skip
    result = stillroom("train", str(plan), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return run_dir_from(result.stdout)


def test_answers_asked_together_through_unsloth_are_the_answers_asked_alone(facts_on_gpu):
    """Eval, retention and replay ask in left-padded batches: Unsloth's generation gives each
    row of a batch what it gives that prompt alone."""
    from engine.chat import load_student

    student = load_student(facts_on_gpu)
    assert student.backend == "unsloth"
    asked = [[{"role": "user", "content": question}] for question, _ in FACTS]
    together = student.answer_all(asked, max_new_tokens=30)
    alone = [student.answer(messages, max_new_tokens=30) for messages in asked]
    assert [a.text for a in together] == [a.text for a in alone]
    base = student.answer_all(asked, base=True, max_new_tokens=8)
    assert len(base) == len(asked) and all(a.tokens for a in base)
    recalled = sum(a.text == answer for a, (_, answer) in zip(together, FACTS, strict=True))
    print(f"\nunsloth, answers together: {recalled} of {len(FACTS)} facts recalled")
