"""Eval metrics (pure Python, table-driven) and `stillroom eval` on the trained facts run."""

from __future__ import annotations

import json

import pytest

from engine.data.types import Conversation
from engine.evaluate import parse_scores, rouge_l, token_f1, tokens
from engine.train.dataset import load_eval_split, save_eval_split
from tests.engine.training import stillroom


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
    result = stillroom("eval", str(facts_run), "--max-new-tokens", "40")
    assert result.returncode == 0, result.stderr
    assert "token F1 vs teacher" in result.stdout
    report = json.loads((facts_run / "eval" / "report.json").read_text())
    base, student = report["metrics"]["base"], report["metrics"]["student"]
    assert report["rows"] == 6
    assert student["token_f1"] > base["token_f1"] + 0.5
    assert student["rouge_l"] > base["rouge_l"] + 0.5
    assert student["clean_end_share"] == 1.0 and student["cut_share"] == 0.0
    assert base["cut_share"] == 1.0  # the random base never stops
    markdown = (facts_run / "eval" / "report.md").read_text()
    assert "| token F1 vs teacher |" in markdown and "## Examples" in markdown
