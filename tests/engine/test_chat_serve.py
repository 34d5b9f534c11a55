"""``python -m engine chat-serve``: the Chat step's child, driven through real pipes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from engine import events as ev
from tests.engine.training import FACTS, REPO


def serve(run_dir: Path, *requests: dict) -> list[ev.Event]:
    """Every event the child writes for ``requests`` (stdin then closes, so it exits);
    stdout carries nothing else."""
    lines = "".join(json.dumps(r) + "\n" for r in requests)
    result = subprocess.run(
        [sys.executable, "-m", "engine", "chat-serve", str(run_dir)],
        input=lines + "not json\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=240,
    )
    assert result.returncode in (0, 1), result.stderr
    return [ev.decode(line) for line in result.stdout.splitlines()]


def ask(question: str, **options) -> dict:
    return {"messages": [{"role": "user", "content": question}], "max_new_tokens": 30, **options}


def test_it_streams_the_learned_answer_then_the_base_models(facts_run):
    question, learned = FACTS[0]
    replies = serve(
        facts_run, ask(question), ask(question, base=True), ask(question, max_new_tokens=2)
    )
    started, ready = replies[:2]
    assert isinstance(started, ev.Started) and started.job == "chat-serve" and started.model
    assert (
        isinstance(ready, ev.Ready)
        and ready.run == str(facts_run)
        and ready.backend in ("hf", "unsloth")
    )
    answers = [i for i, r in enumerate(replies) if isinstance(r, ev.Answer)]
    assert len(answers) == 3
    student = replies[answers[0]]
    tokens = replies[2 : answers[0]]
    assert all(isinstance(r, ev.Token) for r in tokens) and len(tokens) > 1
    assert "".join(r.text for r in tokens) == student.text == learned
    assert student.ended_cleanly and not student.cut
    assert student.ttft_s > 0 and student.tokens_per_s > 0
    assert replies[answers[1]].text != learned
    cut = replies[answers[2]]
    assert cut.cut and not cut.ended_cleanly
    refused, finished = replies[-2:]
    assert isinstance(refused, ev.Refused) and "bad request" in refused.message
    assert isinstance(finished, ev.Finished)  # stdin closed: the job's one terminal event


def test_a_run_without_an_adapter_is_an_error_with_a_hint(tmp_path, facts_run):
    (tmp_path / "plan.toml").write_text((facts_run / "plan.toml").read_text())
    started, error = serve(tmp_path, ask("hi"))
    assert isinstance(started, ev.Started)
    assert isinstance(error, ev.Error) and "has no adapter yet" in error.message
    assert "stillroom runs" in error.hint


def test_a_system_prompt_reaches_the_model_and_bad_options_are_refused(facts_run):
    question = FACTS[0][0]
    replies = serve(
        facts_run,
        ask(question, base=True),
        ask(question, base=True, system="Answer only in French, in capitals."),
        ask(question, base=True, temperature=0),
        ask(question, max_new_tokens=0),
        ask(question, temperature=5),
    )
    answers = [r.text for r in replies if isinstance(r, ev.Answer)]
    errors = [r.message for r in replies if isinstance(r, ev.Refused)]
    assert len(answers) == 3
    plain, with_system, greedy = answers
    assert with_system != plain  # the system prompt was in the prompt the model saw
    assert greedy == plain  # temperature 0 is the greedy default
    assert errors[:2] == [
        "bad request: The answer budget must be a whole number from 1 to 32768.",
        "bad request: The temperature must be a number from 0 (greedy) to 2.",
    ]
