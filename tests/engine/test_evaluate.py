"""Eval metrics (pure Python, table-driven) and `stillroom eval` on the trained facts run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine import events as ev
from engine.data.types import Conversation
from engine.evaluate import parse_scores, rouge_l, token_f1, tokens
from engine.train.dataset import load_eval_split, save_eval_split
from tests.engine.training import REPO, stillroom


@pytest.mark.parametrize(
    ("prediction", "reference", "f1", "rouge"),
    [
        ("A spider has eight legs.", "a spider has EIGHT legs", 1.0, 1.0),
        ("eight legs", "A spider has eight legs.", 4 / 7, 4 / 7),
        ("legs eight", "eight legs", 1.0, 0.5),
        ("", "anything", 0.0, 0.0),
        ("", "", 1.0, 1.0),
        ("cats", "dogs", 0.0, 0.0),
    ],
)
def test_token_f1_and_rouge_l(prediction, reference, f1, rouge):
    assert token_f1(prediction, reference) == pytest.approx(f1)
    assert rouge_l(prediction, reference) == pytest.approx(rouge)


def test_tokens_are_lower_case_words_without_punctuation():
    assert tokens("Hello, World! It's 3.5") == ["hello", "world", "it", "s", "3", "5"]


def test_judge_scores_are_read_from_text_around_json():
    assert parse_scores('Sure. {"A": 7, "B": 3.5} done') == {"A": 7.0, "B": 3.5}
    assert parse_scores("no grades here") is None
    assert parse_scores('{"A": 7}') is None


def test_the_eval_split_round_trips(tmp_path):
    held = [
        Conversation(
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], 3, "r"
        )
    ]
    save_eval_split(tmp_path, held)
    assert load_eval_split(tmp_path) == held
    assert load_eval_split(tmp_path / "missing") is None


def test_training_keeps_its_held_out_split(facts_run):
    held = load_eval_split(facts_run)
    assert held is not None and len(held) == 6  # a quarter of 24 rows
    assert all(c.messages[-1]["role"] == "assistant" for c in held)


def test_eval_writes_both_reports_and_the_student_beats_the_base(facts_run):
    result = stillroom("eval", str(facts_run), "--max-new-tokens", "40", "--no-retention")
    assert result.returncode == 0, result.stderr
    assert "token F1 vs teacher" in result.stdout
    report = json.loads((facts_run / "eval" / "report.json").read_text())
    base, student = report["metrics"]["base"], report["metrics"]["student"]
    distinct = {c.messages[-2]["content"] for c in load_eval_split(facts_run)}
    assert report["rows"] == len(distinct)  # each held-out prompt once
    assert student["token_f1"] > base["token_f1"] + 0.5
    assert student["rouge_l"] > base["rouge_l"] + 0.5
    assert student["clean_end_share"] == 1.0 and student["cut_share"] == 0.0
    assert base["cut_share"] == 1.0  # the random base never stops
    markdown = (facts_run / "eval" / "report.md").read_text()
    assert "| token F1 vs teacher |" in markdown and "## Examples" in markdown


def test_eval_is_bounded_by_default(tmp_path):
    """Distinct prompts only, a random 50 at most, a budget sized by the teacher's answers."""
    from engine.evaluate import DEFAULT_N, answer_budget, eval_set

    rows = [
        Conversation([{"role": "user", "content": f"question {i % 70}"},
                      {"role": "assistant", "content": f"answer {i}"}], i, None)
        for i in range(140)
    ]  # fmt: skip
    save_eval_split(tmp_path, rows)
    chosen = eval_set(tmp_path)
    prompts = [messages[-1]["content"] for messages, _ in chosen.pairs]
    assert len(prompts) == DEFAULT_N == len(set(prompts))
    assert chosen.source.startswith(f"{DEFAULT_N} of 70 distinct held-out prompts")
    assert len(eval_set(tmp_path, everything=True).pairs) == 70
    assert answer_budget([10, 80, 30], None) == (120, "1.5x the longest teacher answer (80 tokens)")
    assert answer_budget([10], None)[0] == 64  # a floor, so a short answer can still end
    assert answer_budget([5000], None)[0] == 1024  # a cap, so a never-ending base stops
    assert answer_budget([40], 200) == (200, "as asked")


def test_a_tiny_held_out_set_is_called_too_small(tmp_path):
    from engine.evaluate import eval_set

    save_eval_split(tmp_path, [Conversation([{"role": "user", "content": "q"},
                                             {"role": "assistant", "content": "a"}], 0, None)])  # fmt: skip
    notes = eval_set(tmp_path).notes
    assert notes and "too few for these scores to mean much" in notes[0]


def engine_job(*args: str) -> tuple[subprocess.CompletedProcess[str], list[ev.Event]]:
    """``python -m engine ARGS`` as the wizard starts it, and the events on its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "engine", *args], capture_output=True, text=True, cwd=REPO,
        timeout=240,
    )  # fmt: skip
    return done, [ev.decode(line) for line in done.stdout.splitlines()]  # nothing but events


def test_the_eval_job_reports_progress_with_time_to_go_then_where_the_report_is(facts_run):
    done, events = engine_job(
        "eval", str(facts_run), "--n", "2", "--max-new-tokens", "8", "--no-retention"
    )
    assert done.returncode == 0, done.stderr
    started, *progress, result, finished = events
    assert isinstance(started, ev.Started) and started.job == "eval" and started.model
    # Answers, in batches: the base's two, then the student's two.
    assert [(p.stage, p.done, p.total) for p in progress] == [("recall", 2, 4), ("recall", 4, 4)]
    assert progress[0].eta_s is not None and progress[-1].eta_s == 0
    assert isinstance(result, ev.Result) and result.summary.startswith("learned")
    assert json.loads(Path(result.paths["report"]).read_text())["rows"] == 2
    assert isinstance(finished, ev.Finished)


def test_the_export_job_names_what_it_wrote_or_says_what_to_do(facts_run, tmp_path, monkeypatch):
    done, events = engine_job(
        "export", str(facts_run), "--format", "adapter", "--out", str(tmp_path / "a")
    )
    assert done.returncode == 0, done.stderr
    result, finished = events[-2:]
    assert isinstance(result, ev.Result) and not result.flagged
    assert result.paths == {"adapter": str(tmp_path / "a")} and isinstance(finished, ev.Finished)

    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    done, events = engine_job("export", str(facts_run), "--format", "gguf")
    error = events[-1]
    assert done.returncode == 1 and isinstance(error, ev.Error) and error.kind == "user"
    assert "no GGUF converter found" in error.message and "LLAMA_CPP_DIR" in error.hint
    assert "Traceback" not in done.stderr
