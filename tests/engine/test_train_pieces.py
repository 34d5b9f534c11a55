"""Training pieces that need no child process: schema doc, checkpoints, LoRA size."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from engine import events as ev
from engine.train.checkpoints import mark_complete, prepare_resume

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_the_schema_doc_names_every_event_and_field():
    text = DOC.read_text()
    for name, cls in ev.event_types().items():
        assert f"`{name}`" in text, name
        for field in dataclasses.fields(cls):
            assert f"`{field.name}`" in text, f"{name}.{field.name}"


def test_resume_takes_the_newest_whole_checkpoint_and_drops_torn_ones(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (10, 20, 30):
        (root / f"checkpoint-{step}").mkdir(parents=True)
    mark_complete(root / "checkpoint-10", 10)
    mark_complete(root / "checkpoint-20", 20)
    assert prepare_resume(tmp_path) == (20, root / "checkpoint-20")
    assert not (root / "checkpoint-30").exists()
    assert prepare_resume(tmp_path / "nothing") is None


def test_lora_r16_on_all_projections_of_qwen25_15b_trains_18464768_parameters():
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from engine.plan import ALL_PROJECTIONS

    config = Qwen2Config(
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        vocab_size=151936,
        tie_word_embeddings=True,
    )
    with torch.device("meta"):
        model = Qwen2ForCausalLM(config)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=16, target_modules=ALL_PROJECTIONS))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 18_464_768
