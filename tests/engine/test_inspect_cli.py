"""`stillroom inspect` as a user runs it: a real subprocess, exit codes, stderr, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBLEM_ROWS = [
    {"instruction": "Name a colour", "input": "", "output": "Blue"},  # 1
    {"instruction": "Add", "input": "2 and 2", "output": "4"},  # 2
    {"instruction": "", "input": "", "output": "Orphan answer"},  # 3 empty_prompt
    {"instruction": "Say nothing", "input": "", "output": "  "},  # 4 empty_response
    {"instruction": "Name a colour", "input": "", "output": "Blue"},  # 5 duplicate of 1
    {"instruction": "Unanswered", "input": ""},  # 6 missing_response
    {"instruction": "Write a long story", "input": "", "output": "Once upon a time " * 40},  # 7
]


def stillroom(*args: str) -> subprocess.CompletedProcess[str]:
    # A wide terminal, so the report's sentences are not wrapped inside table cells.
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", "inspect", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250"},
    )


def inspect_json(*args: str) -> dict:
    result = stillroom(*args, "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout)


@pytest.fixture
def alpaca_file(tmp_path):
    path = tmp_path / "alpaca.jsonl"
    lines = [json.dumps(row) for row in PROBLEM_ROWS]
    lines.insert(7, '{"instruction": "torn line", "out')  # line 8 of the file
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_json_report_names_format_mapping_and_every_problem(alpaca_file):
    report = inspect_json(str(alpaca_file))
    assert report["source"] == str(alpaca_file)
    assert report["format"] == "alpaca"
    assert report["rows"] == 7
    assert report["columns"] == ["instruction", "input", "output"]
    assert report["mapping"] == {"instruction": "instruction", "output": "output", "input": "input"}
    problems = {p["kind"]: (p["count"], p["rows"]) for p in report["problems"]}
    assert problems == {
        "malformed_line": (1, [8]),
        "empty_prompt": (1, [3]),
        "empty_response": (1, [4]),
        "missing_response": (1, [6]),
        "duplicate": (1, [5]),
    }
    assert all(p["message"] for p in report["problems"])
    assert report["usable_rows"] == 3
    assert "tokens" not in report  # no tokenizer named


def test_mapping_override_on_the_command_line(tmp_path):
    path = tmp_path / "poems.csv"
    path.write_text('title,body,poem\nRain,Write a poem about rain,"Drip, drop."\n')
    guessed = inspect_json(str(path))
    assert guessed["format"] == "unknown"  # three unnamed text columns: no safe guess
    report = inspect_json(str(path), "--map", "prompt=body,response=poem")
    assert report["format"] == "pair"
    assert report["mapping"] == {"prompt": "body", "response": "poem"}
    assert report["sample"] == [
        {"role": "user", "content": "Write a poem about rain"},
        {"role": "assistant", "content": "Drip, drop."},
    ]
    assert report["usable_rows"] == 1
    assert report["mapping_source"] == "given"


@pytest.mark.parametrize(
    ("header", "source"),
    [("question,answer", "detected"), ("body,poem", "guessed")],
)
def test_json_says_whether_the_mapping_was_only_guessed(tmp_path, header, source):
    """A script can tell a mapping read from column names from one guessed from their order."""
    path = tmp_path / "pairs.csv"
    path.write_text(f'{header}\nWrite a poem about rain,"Drip, drop."\n')
    report = inspect_json(str(path))
    assert report["format"] == "pair" and report["mapping_source"] == source


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--map", "prompt=question"], ["no column named question", "title, body, poem"]),
        (["--map", "prompt"], ["is not KEY=COLUMN"]),
    ],
    ids=["missing_column", "bad_syntax"],
)
def test_bad_mapping_exits_2_and_says_why(tmp_path, args, words):
    path = tmp_path / "poems.csv"
    path.write_text("title,body,poem\nRain,Write a poem about rain,Drip\n")
    result = stillroom(str(path), *args)
    assert result.returncode == 2
    assert result.stdout == ""
    for word in words:
        assert word in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("missing.jsonl", None, "file not found"),
        ("empty.jsonl", b"", "the file is empty"),
        ("model.bin", b"\x00\x00\x01\x02\xff" * 20, "binary"),
        ("prose.txt", b"Dear diary, today I wrote no dataset.\n", "not a dataset"),
    ],
    ids=["missing", "empty", "binary", "not_a_dataset"],
)
def test_unreadable_source_exits_2_with_one_line(tmp_path, name, content, reason):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    for args in ([str(path)], [str(path), "--json"]):
        result = stillroom(*args)
        assert result.returncode == 2
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("stillroom: ") and reason in lines[0]


def test_unknown_format_is_still_a_report(tmp_path):
    path = tmp_path / "numbers.json"
    path.write_text(json.dumps([{"x": 1, "y": 2}, {"x": 3, "y": 4}]))
    report = inspect_json(str(path))
    assert (report["format"], report["rows"], report["usable_rows"]) == ("unknown", 2, 0)
    assert report["mapping"] == {}
    assert "--map" in report["evidence"]


def test_human_report_shows_evidence_sample_and_fixes(alpaca_file):
    result = stillroom(str(alpaca_file))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "read as Alpaca: instruction (+ input) -> user, output -> assistant" in out
    assert "3 usable" in out
    assert "Name a colour" in out and "Blue" in out  # the sample
    for kind in ("malformed_line", "empty_prompt", "empty_response", "missing_response"):
        assert kind in out
    assert "map the answer column (--map response=COLUMN)" in out  # the fix


def test_sharegpt_teacher_file_and_parquet_read_through_the_cli(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    turns = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]
    path = tmp_path / "chat.parquet"
    pq.write_table(pa.Table.from_pylist([{"conversations": turns}] * 2), path)
    report = inspect_json(str(path))
    assert (report["format"], report["rows"], report["usable_rows"]) == ("sharegpt", 2, 1)
    assert [p["kind"] for p in report["problems"]] == ["duplicate"]
    assert "conversations[].from/value -> user/assistant" in report["evidence"]


@pytest.mark.slow
def test_token_lengths_with_the_student_tokenizer(alpaca_file, tiny_model_dir):
    full = inspect_json(str(alpaca_file), "--model", str(tiny_model_dir))
    tokens = full["tokens"]
    assert tokens["min"] <= tokens["median"] <= tokens["p95"] <= tokens["max"]
    assert tokens["too_long"] == 0 and full["usable_rows"] == 3
    assert "too_long" not in {p["kind"] for p in full["problems"]}

    # Only the long story (row 7) exceeds a limit between the short rows and it.
    limit = str((tokens["max"] + tokens["min"]) // 2)
    dropped = inspect_json(
        str(alpaca_file), "--model", str(tiny_model_dir), "--max-seq-length", limit
    )
    too_long = next(p for p in dropped["problems"] if p["kind"] == "too_long")
    assert (too_long["count"], too_long["rows"]) == (1, [7])
    assert "1 would lose part of the answer" in too_long["message"]
    assert dropped["tokens"]["too_long"] == 1
    assert dropped["usable_rows"] == 2

    truncated = stillroom(
        str(alpaca_file),
        "--model",
        str(tiny_model_dir),
        "--max-seq-length",
        limit,
        "--overflow",
        "truncate",
    )
    assert truncated.returncode == 0, truncated.stderr
    assert "3 usable" in truncated.stdout  # the long story is kept, cut short
    assert "trained tokens highlighted" in truncated.stdout
    assert "Token lengths" in truncated.stdout


def test_a_limit_below_every_row_shows_the_gate_and_the_lengths_behind_it(
    alpaca_file, tiny_model_dir
):
    """When nothing would train, the report still shows how long the rows are."""
    report = inspect_json(
        str(alpaca_file), "--model", str(tiny_model_dir), "--max-seq-length", "16"
    )
    assert "nothing to train on" in report["gate"]
    assert report["tokens"]["too_long"] == report["tokens"]["rows"] == 3
    assert report["tokens"]["min"] > 16
    assert sum(bucket["rows"] for bucket in report["histogram"]) == 3
