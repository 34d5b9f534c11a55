"""Stdout carries only answers and --json, even when a library talks on import.

A stand-in for Unsloth's import banner: a ``sitecustomize`` that prints on stdout
(Python's ``print`` and a raw write to fd 1, as C code does) the moment
``transformers`` is first imported, which every command below does to load a model.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.engine.training import FACTS, write_facts, write_plan
from tests.engine.training import stillroom as run_stillroom

BANNER = "🦥 Unsloth: Will patch your computer to enable 2x faster free finetuning."
CHATTY = f"""
import importlib.abc, os, sys

class Chatty(importlib.abc.MetaPathFinder):
    said = False

    def find_spec(self, name, path, target=None):
        if name == "transformers" and not Chatty.said:
            Chatty.said = True
            print({BANNER!r})
            os.write(1, b"Unsloth: OpenAI failed to import\\n")
        return None

sys.meta_path.insert(0, Chatty())
"""


@pytest.fixture(scope="module")
def chatty(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("chatty")
    (folder / "sitecustomize.py").write_text(CHATTY)
    return {**os.environ, "PYTHONPATH": str(folder)}


def stillroom(
    env: dict[str, str], *args: str, input: str | None = None, loads_here: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command; ``loads_here`` says it loads a model in its own process (so it chats)."""
    result = run_stillroom(*args, input=input, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    if loads_here:
        assert BANNER in result.stderr, "the stand-in did not speak: nothing was tested"
    assert BANNER not in result.stdout and "OpenAI failed" not in result.stdout
    return result


def test_chat_prompt_prints_only_the_answer(chatty, facts_run):
    question, answer = FACTS[0]
    result = stillroom(
        chatty, "chat", str(facts_run), "--prompt", question, "--max-new-tokens", "30"
    )
    assert result.stdout == answer + "\n"


def test_line_chat_prints_only_answers(chatty, facts_run):
    question, answer = FACTS[1]
    result = stillroom(chatty, "chat", str(facts_run), "--lines", "--max-new-tokens", "30",
                       input=f"{question}\n/quit\n")  # fmt: skip
    assert result.stdout == answer + "\n"


def test_eval_json_is_parseable(chatty, facts_run, tmp_path):
    env = {**chatty, "XDG_CACHE_HOME": str(tmp_path)}  # retention's base answers
    result = stillroom(env, "eval", str(facts_run), "--json", "--n", "2", "--max-new-tokens", "8")
    report = json.loads(result.stdout)  # retention's progress stays on stderr too
    assert report["rows"] == 2 and report["retention"]["prompts"] > 0


def test_inspect_json_with_a_model_is_parseable(chatty, tiny_model_dir, tmp_path):
    data = write_facts(tmp_path)
    result = stillroom(chatty, "inspect", str(data), "--model", str(tiny_model_dir), "--json")
    assert json.loads(result.stdout)["tokens"]["max"] > 0


def test_export_json_is_parseable(chatty, facts_run, tmp_path):
    out = tmp_path / "exported"
    result = stillroom(chatty, "export", str(facts_run), "--format", "merged", "--out", str(out),
                       "--json")  # fmt: skip
    report = json.loads(result.stdout)
    assert report["path"] == str(out) and report["parity"]["differing"] == 0


def test_probe_json_is_parseable(chatty, tiny_model_dir, tmp_path):
    plan = write_plan(tmp_path, tiny_model_dir, write_facts(tmp_path))
    result = stillroom(chatty, "train", str(plan), "--probe", "--json", loads_here=False)
    figures = json.loads(result.stdout)
    assert figures["steps"] == 5 and figures["micro_batch"] >= 1
    assert figures["full_run_s"] > 0


def test_dry_run_json_is_parseable(tmp_path):
    """No model is loaded here, so no chatter: the JSON is the whole of stdout."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("What is two and two?\nName a colour.\n")
    result = run_stillroom(
        "generate", "--prompts", str(prompts), "--provider", "local", "--base-url",
        "http://127.0.0.1:9/v1", "--model", "m", "--dry-run", "--json",
        "--out", str(tmp_path / "out.jsonl"), timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    forecast = json.loads(result.stdout)
    assert forecast["prompts"] == 2 and forecast["to_send"] == 2 and forecast["cost_usd"] == 0
