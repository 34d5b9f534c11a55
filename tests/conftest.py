"""Shared fixtures: a tiny Qwen2.5-style student, built offline once per test session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.tiny_model import build_tiny_model


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
