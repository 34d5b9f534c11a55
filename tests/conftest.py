"""Shared fixtures: a tiny Qwen2.5-style student built offline, and a facts run trained from it,
each once per test session (the engine and the TUI tests both talk to the facts run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.engine.training import run_dir_from, stillroom, write_facts, write_plan
from engine.tiny_model import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a two-layer Qwen2 and its ChatML tokenizer, as ``from_pretrained`` reads."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path) -> Any:
    """The tiny student's tokenizer loaded the way a user's is: through ``AutoTokenizer``.

    Shared by the session, so never modify it; copy it first.
    """
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


HELD_OUT = 0.25


@pytest.fixture(scope="session")
def facts_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny student trained until it recalls all six facts, a quarter of the rows held out.

    150 steps at lr 1e-2 (batch 8, warmup 10) recalled 6/6 facts on the 2-core CPU box;
    fewer steps or a higher rate left it mixing answers up.
    """
    folder = tmp_path_factory.mktemp("facts-run")
    plan = write_plan(
        folder,
        tiny_model_dir,
        write_facts(folder),
        max_steps=150,
        learning_rate=1e-2,
        batch_size=8,
        warmup_steps=10,
        save_steps=1000,
    )
    plan.write_text(plan.read_text().replace("eval_fraction = 0.0", f"eval_fraction = {HELD_OUT}"))
    result = stillroom("train", str(plan))
    assert result.returncode == 0, result.stdout + result.stderr
    return run_dir_from(result.stdout)
