"""Reading dataset files: every supported layout, awkward encodings, and clear refusals."""

from __future__ import annotations

import csv
import json

import pytest

from engine.data.load import read_table
from engine.errors import UserError

ROWS = [
    {"question": "What is 2+2?", "answer": "4"},
    {"question": "Capital of France?", "answer": 'Paris, "the city of light"'},
]


def _write_delimited(path, rows, delimiter):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)


def _write_parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)


WRITERS = {
    "rows.json": lambda p, rows: p.write_text(json.dumps(rows)),
    "columns.json": lambda p, rows: p.write_text(
        json.dumps({k: [r[k] for r in rows] for k in rows[0]})
    ),
    "wrapped.json": lambda p, rows: p.write_text(json.dumps({"data": rows})),
    "rows.jsonl": lambda p, rows: p.write_text("\n".join(json.dumps(r) for r in rows) + "\n"),
    "jsonl_named.json": lambda p, rows: p.write_text("\n".join(json.dumps(r) for r in rows)),
    "rows.csv": lambda p, rows: _write_delimited(p, rows, ","),
    "rows.tsv": lambda p, rows: _write_delimited(p, rows, "\t"),
    "rows.parquet": _write_parquet,
}


@pytest.mark.parametrize("name", WRITERS)
def test_every_layout_reads_to_the_same_rows(tmp_path, name):
    path = tmp_path / name
    WRITERS[name](path, ROWS)
    table = read_table(str(path))
    assert table.columns == ["question", "answer"]
    assert table.rows == ROWS
    assert table.malformed_rows == []


def test_bom_and_crlf_leave_no_trace_in_names_or_values(tmp_path):
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes(
        b"\xef\xbb\xbf" + b"\r\n".join(json.dumps(r).encode() for r in ROWS) + b"\r\n"
    )
    crlf_csv = tmp_path / "bom.csv"
    crlf_csv.write_bytes(b'\xef\xbb\xbfprompt,response\r\nhi,"two\r\nlines"\r\nyo,ok\r\n')
    assert read_table(str(jsonl)).rows == ROWS
    table = read_table(str(crlf_csv))
    assert table.columns == ["prompt", "response"]
    assert table.rows == [
        {"prompt": "hi", "response": "two\r\nlines"},
        {"prompt": "yo", "response": "ok"},
    ]


def test_utf16_with_bom_is_read(tmp_path):
    path = tmp_path / "windows.json"
    path.write_bytes(json.dumps(ROWS, ensure_ascii=False).encode("utf-16"))
    assert read_table(str(path)).rows == ROWS


def test_bad_jsonl_lines_are_skipped_and_counted_by_line_number(tmp_path):
    path = tmp_path / "torn.jsonl"
    lines = [json.dumps(ROWS[0]), "{not json", "", "[1, 2]", json.dumps(ROWS[1]), '{"cut": "of']
    path.write_text("\n".join(lines))
    table = read_table(str(path))
    assert table.rows == ROWS
    assert table.malformed_rows == [2, 4, 6]
    assert table.row_numbers() == [1, 5]


def test_problem_rows_are_file_lines_after_a_bad_line(tmp_path):
    """A user opens the file at the reported line and finds the faulty row there."""
    from engine.data.inspect import inspect_source

    path = tmp_path / "pairs.jsonl"
    good = {"prompt": "What is 2+2?", "response": "4"}
    lines = [json.dumps(good), "{torn", "", json.dumps({"prompt": "Hi", "response": ""})]
    path.write_text("\n".join(lines))
    problems = {p["kind"]: p["rows"] for p in inspect_source(str(path)).to_json()["problems"]}
    assert problems == {"malformed_line": [2], "empty_response": [4]}


UNREADABLE = [
    ("empty.jsonl", b"", "empty"),
    ("blank.csv", b"  \n\n", "empty"),
    ("weights.bin", b"\x00\x01\x02binary\x00", "binary"),
    ("image.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    ("latin1.csv", "prompt,response\ncaf\u00e9,ok\n".encode("latin-1"), "not UTF-8"),
    ("notes.txt", b"Just some prose, not a dataset.\n", "not a dataset"),
    ("scalar.json", b"42", "not a dataset"),
    ("strings.json", b'["a", "b"]', "not a dataset"),
    ("lists.jsonl", b"[1]\n[2]\n", "no line is a JSON object"),
    ("header.csv", b"prompt,response\n", "no rows"),
    ("fake.parquet", b"this is not parquet", "not a Parquet file"),
    ("broken.parquet", b"PAR1garbagePAR1", "damaged Parquet"),
    ("ragged.json", b'{"a": [1, 2], "b": [1]}', "different lengths"),
]


@pytest.mark.parametrize(
    ("name", "content", "reason"), UNREADABLE, ids=[case[0] for case in UNREADABLE]
)
def test_unreadable_files_are_refused_with_the_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError) as caught:
        read_table(str(path))
    assert reason in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_file_and_folder_are_refused(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        read_table(str(tmp_path / "nope.jsonl"))
    with pytest.raises(UserError, match="file not found"):
        read_table("data/train.jsonl")  # looks like owner/name, but it names a data file
    with pytest.raises(UserError, match="is a folder"):
        read_table(str(tmp_path))


def test_hub_id_goes_through_load_dataset_with_the_split(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, split):
        calls.append((path, split))
        return datasets.Dataset.from_list(ROWS)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    table = read_table("someone/qa-set", split="train[:1%]")
    assert calls == [("someone/qa-set", "train[:1%]")]
    assert (table.kind, table.columns, table.rows) == ("hub", ["question", "answer"], ROWS)


def test_hub_failure_is_a_user_error(monkeypatch):
    import datasets

    def unreachable(path, split):
        raise ConnectionError("Couldn't reach 'someone/qa-set' on the Hub\nmore detail")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(UserError, match="could not load from the hub: Couldn't reach") as caught:
        read_table("someone/qa-set")
    assert "\n" not in str(caught.value)
