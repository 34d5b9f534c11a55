"""Read a dataset source into a :class:`Table`, or refuse it in one clear sentence.

Local files (JSON, JSONL, CSV/TSV, Parquet) are read with the standard library
and pyarrow, so inspecting a file never imports ``datasets``; a hub id goes
through ``datasets.load_dataset``, imported only when one is asked for.
Text is UTF-8 with or without a BOM (UTF-16 with a BOM too, as Windows tools
write it) and any line ending. A JSONL line that does not parse, or nests too deep
to parse, is skipped and counted, never fatal; a file that is empty, binary, not
a dataset or that the system will not let us read is refused in one sentence.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

from engine.data.types import Table
from engine.errors import UserError
from engine.i18n import _

_SUFFIX_KIND = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_PARQUET_MAGIC = b"PAR1"
_SNIFF_BYTES = 8192
# Nesting past this is reported at the line where it is reached; the parser itself gives up
# near Python's recursion limit (about 1,000), which no real conversation comes near.
TOO_DEEP = 500
_JSON_SYNTAX = re.compile(r'[\[\]{}"\\]')


def read_table(source: str, split: str | None = None) -> Table:
    """Read ``source`` (a local file, or a hub id ``owner/name``) into rows of plain values.

    ``split`` is a split expression such as ``train[:1%]``; it applies to hub
    datasets only, since a local file is a single split.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        raise UserError(
            _("{source}: is a folder; point at one data file inside it").format(source=source)
        )
    if path.is_file():
        return _read_file(path, source)
    if path.exists():
        raise UserError(
            _(
                "{source}: not a regular file (a device, pipe or socket); copy the data into a file"
            ).format(source=source)
        )
    if path.is_symlink():
        raise UserError(
            _("{source}: a symbolic link that leads nowhere readable (broken, or a loop)").format(
                source=source
            )
        )
    if looks_like_hub_id(source):
        return _read_hub(source, split)
    raise UserError(
        _("{source}: file not found (a hub dataset id looks like owner/name)").format(source=source)
    )


def looks_like_hub_id(source: str) -> bool:
    """``owner/name`` with no data-file suffix; ``data/train.jsonl`` is a missing file, not an id."""
    return bool(_HUB_ID.match(source)) and Path(source).suffix.lower() not in _SUFFIX_KIND


def _read_file(path: Path, source: str) -> Table:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise UserError(
            _("{source}: cannot read it ({value})").format(
                source=source, value=error.strerror or error
            ),
            hint=_(
                "Check that the file is readable by you (ls -l; chmod u+r FILE if it is yours)."
            ),
        ) from None
    if not raw.strip():
        raise UserError(_("{source}: the file is empty").format(source=source))
    if raw.startswith(_PARQUET_MAGIC):
        return _read_parquet(path, source)
    text = _decode(raw, source)
    del raw  # a big file is held once, as text, while it is parsed
    kind = _SUFFIX_KIND.get(path.suffix.lower())
    if kind == "parquet":
        raise UserError(
            _("{source}: not a Parquet file (it does not start with PAR1)").format(source=source)
        )
    if kind in ("csv", "tsv"):
        return _read_delimited(text, source, "\t" if kind == "tsv" else ",", kind)
    # .json, .jsonl and unknown suffixes: the content decides, because files
    # named .json are often JSONL and the other way round.
    stripped = text.lstrip()
    if stripped[:1] in ("[", "{"):
        try:
            table = _read_json_document(text, source)
        except RecursionError:  # JSONL whose first line nests too deep, or one deep document
            try:
                return _read_jsonl(text, source)
            except UserError:
                raise _too_deep(text, source) from None
        if table is not None:
            return table
        return _read_jsonl(text, source)
    if kind is None:
        raise UserError(
            _(
                "{source}: not a dataset Stillroom can read (expected JSON, JSONL, CSV, TSV or "
                "Parquet)"
            ).format(source=source)
        )
    raise UserError(
        _("{source}: not a dataset: {kind} rows must be JSON objects").format(
            source=source, kind=kind.upper()
        )
    )


def _decode(raw: bytes, source: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    if b"\x00" in raw[:_SNIFF_BYTES]:
        raise UserError(_("{source}: a binary file, not a dataset").format(source=source))
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise UserError(
            _(
                "{source}: not UTF-8 text (bad byte at offset {start}, line {line}); save it as "
                "UTF-8"
            ).format(source=source, start=error.start, line=line)
        ) from None


def _read_json_document(text: str, source: str) -> Table | None:
    """One JSON value: an array of objects, or an object of equal-length columns.

    Returns ``None`` when the text is not a single JSON value, so the caller
    can try it as JSONL.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(value, dict):
        value = _unwrap_object(value, source)
    if isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
        columns = _columns(value)
        if columns:
            return Table(source=source, columns=columns, rows=value, kind="json")
    if isinstance(value, list) and not value:
        raise UserError(_("{source}: the JSON array is empty").format(source=source))
    raise UserError(
        _(
            "{source}: not a dataset: JSON must be an array of objects or an object of columns"
        ).format(source=source)
    )


def _unwrap_object(value: dict[str, Any], source: str) -> list[Any]:
    """Turn a JSON object into rows: a wrapper, an object of columns, or one record.

    ``{"data": [{...}, ...]}`` is a wrapper around rows; ``{"q": [...], "a": [...]}``
    is columns of equal length; anything else (say one teacher record with
    ``messages`` and ``meta``) is a single row.
    """
    values = list(value.values())
    if len(values) == 1 and isinstance(values[0], list) and values[0]:
        items = values[0]
        if all(isinstance(item, dict) for item in items) and not any(map(_is_turn, items)):
            return items
    if all(isinstance(v, list) for v in values) and len(values) > 1:
        lengths = {len(v) for v in values}
        if len(lengths) != 1:
            raise UserError(
                _("{source}: the JSON columns have different lengths {lengths}").format(
                    source=source, lengths=sorted(lengths)
                )
            )
        return [dict(zip(value, cells, strict=True)) for cells in zip(*values, strict=True)]
    return [value]


def _is_turn(item: dict[str, Any]) -> bool:
    return "role" in item or "from" in item


def _read_jsonl(text: str, source: str) -> Table:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    malformed: list[int] = []
    deep: list[int] = []
    decode = json.JSONDecoder().decode
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = decode(line)
        except json.JSONDecodeError:
            malformed.append(number)
            continue
        except RecursionError:
            deep.append(number)
            continue
        if isinstance(value, dict):
            rows.append(value)
            lines.append(number)
        else:
            malformed.append(number)
    if not rows:
        raise UserError(
            _("{source}: not a dataset: no line is a JSON object").format(source=source)
        )
    return Table(
        source=source,
        columns=_columns(rows),
        rows=rows,
        malformed_rows=malformed,
        too_deep_rows=deep,
        kind="jsonl",
        line_numbers=lines if lines[-1] != len(lines) else None,
    )


def _too_deep(text: str, source: str) -> UserError:
    """The refusal of a JSON document nested too deep to parse, naming the line where it gets so."""
    depth, in_string, escaped_at, at = 0, False, -1, 0
    for match in _JSON_SYNTAX.finditer(text):
        char, at = match.group(), match.start()
        if at == escaped_at:
            continue
        if char == "\\":
            escaped_at = at + 1
        elif char == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif char in "[{":
            depth += 1
            if depth > TOO_DEEP:
                break
        else:
            depth -= 1
    line = text.count("\n", 0, at) + 1
    return UserError(
        _(
            "{source}: line {line}: JSON nested too deep to read (more than {TOO_DEEP} levels of [ "
            "and {{; no conversation nests like that)"
        ).format(source=source, line=line, TOO_DEEP=TOO_DEEP),
        hint=_(
            "The file is damaged or not a dataset: look at line {line}, or write it again."
        ).format(line=line),
    )


def _read_delimited(text: str, source: str, delimiter: str, kind: str) -> Table:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if not header or not any(name.strip() for name in header):
        raise UserError(
            _("{source}: not a dataset: the first line holds no column names").format(source=source)
        )
    names = [name.strip() or f"column_{i + 1}" for i, name in enumerate(header)]
    rows = [dict(zip(names, cells, strict=False)) for cells in reader if any(cells)]
    if not rows:
        raise UserError(_("{source}: has column names but no rows").format(source=source))
    return Table(source=source, columns=names, rows=rows, kind=kind)


def _read_parquet(path: Path, source: str) -> Table:
    import pyarrow.parquet as pq
    from pyarrow import ArrowException

    try:
        arrow = pq.read_table(path)
    except (ArrowException, OSError) as error:
        raise UserError(
            _("{source}: a damaged Parquet file ({error})").format(source=source, error=error)
        ) from None
    if arrow.num_rows == 0:
        raise UserError(_("{source}: the Parquet file has no rows").format(source=source))
    return Table(
        source=source, columns=list(arrow.column_names), rows=arrow.to_pylist(), kind="parquet"
    )


def _read_hub(source: str, split: str | None) -> Table:
    import datasets

    try:
        data = datasets.load_dataset(source, split=split or "train")
    except Exception as error:  # the hub raises many types; all mean "cannot read this"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(
            _("{source}: could not load from the hub: {reason}").format(
                source=source, reason=reason
            )
        ) from None
    return Table(source=source, columns=list(data.column_names), rows=data.to_list(), kind="hub")


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """Column names in first-seen order; rows of JSON may not all share the same keys."""
    seen: dict[str, None] = {}
    for row in rows:
        if len(seen) >= len(row) and all(key in seen for key in row):
            continue
        seen.update(dict.fromkeys(row))
    return list(seen)
