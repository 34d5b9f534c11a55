"""One call that reads, detects, normalises and checks a dataset: what ``stillroom inspect``
and the TUI's data step both show, and what ``stillroom train`` reports before it starts
(through :func:`check_source`, so the counts agree).

Everything here but the tokenizer is pure Python and fast; the tokenizer (and so
``transformers``) is loaded only when a model is named, because token counts
are the one thing that needs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.data.formats import column_kinds, detect, normalise
from engine.data.load import read_table
from engine.data.problems import Tally, find_problems, repair, report, tally
from engine.data.types import Conversation, Detection, Message, Problem, Table
from engine.errors import UserError
from engine.i18n import _

if TYPE_CHECKING:
    from engine.hub import Source

_HISTOGRAM_BINS = 10


@dataclass
class InspectReport:
    """What a person (or a screen) needs to judge a dataset before training on it.

    ``rows`` counts the records read (JSONL lines that did not parse are not
    rows; they are a ``malformed_line`` problem); ``tally`` counts them all, and
    how many training could not use, as ``stillroom train`` counts them. ``sample`` is the first
    usable conversation; ``preview`` is the same conversation rendered with the
    student's template, as ``(text, trained)`` pieces, when a model was named.
    """

    source: str
    kind: str
    format: str
    evidence: str
    rows: int
    usable_rows: int
    columns: list[str]
    column_kinds: dict[str, str]
    mapping: dict[str, str]
    mapping_source: str
    problems: list[Problem]
    sample: list[Message] | None = None
    model: str | None = None
    max_seq_length: int | None = None
    tokens: dict[str, Any] | None = None
    histogram: list[tuple[int, int, int]] | None = None  # (from, to, rows)
    preview: list[tuple[str, bool]] | None = None
    gate: str | None = None  # why training would refuse this data, found while rendering
    tally: Tally | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``: one object, stable keys."""
        data: dict[str, Any] = {
            "source": self.source,
            "kind": self.kind,
            "format": self.format,
            "evidence": self.evidence,
            "rows": self.rows,
            "usable_rows": self.usable_rows,
            "records": self.tally.records if self.tally else self.rows,
            "unusable": self.tally.unusable if self.tally else 0,
            "columns": self.columns,
            "column_kinds": self.column_kinds,
            "mapping": self.mapping,
            "mapping_source": self.mapping_source,
            "problems": [p.to_dict() for p in self.problems],
            "sample": self.sample,
        }
        if self.model is not None:
            data["model"] = self.model
            data["max_seq_length"] = self.max_seq_length
            data["gate"] = self.gate
        if self.tokens is not None:
            data["tokens"] = self.tokens
            data["histogram"] = [
                {"from": lo, "to": hi, "rows": n} for lo, hi, n in self.histogram or []
            ]
        data["seconds"] = self.seconds
        return data


def inspect_source(
    source: str,
    *,
    split: str | None = None,
    format: str = "auto",
    mapping: dict[str, str] | None = None,
    model: str | None = None,
    max_seq_length: int = 2048,
    overflow: str = "drop",
    model_source: Source = "huggingface",
) -> InspectReport:
    """Read ``source`` and report its format, mapping, problems and (with a model) token lengths.

    Raises :class:`~engine.errors.UserError` when the source cannot be read at
    all or the mapping is wrong; an unrecognised format is a report, not an error.
    """
    clock = _Clock()
    checked = check_source(source, split=split, format=format, mapping=mapping, lap=clock.lap)
    table, detection, flagged = checked.table, checked.detection, checked.flagged
    usable = checked.usable
    report_ = InspectReport(
        source=source,
        kind=table.kind,
        format=detection.format,
        evidence=detection.evidence,
        rows=len(table.rows),
        usable_rows=0,
        columns=table.columns,
        column_kinds=column_kinds(table),
        mapping=detection.mapping,
        mapping_source=detection.mapping_source,
        problems=[],
        seconds=clock.seconds,
    )
    if detection.format == "unknown":
        report_.problems = report(flagged)
        report_.tally = tally(checked.records, [], flagged)
        return report_
    details: dict[str, str] = {}
    if model is not None:
        report_.model, report_.max_seq_length = model, max_seq_length
        if usable:
            from engine.data.render import load_tokenizer

            tokenizer = load_tokenizer(model, model_source)
            clock.lap("tokenizer")
            usable = _measure(
                report_, usable, tokenizer, max_seq_length, overflow, flagged, details
            )
            clock.lap("render")
    report_.problems = report(flagged, details)
    report_.usable_rows = len(usable)
    report_.tally = tally(checked.records, [c.row for c in usable], flagged)
    report_.sample = usable[0].messages if usable else None
    return report_


@dataclass
class Checked:
    """A dataset read, detected, normalised and checked, before any tokenizer.

    ``flagged`` holds the 1-based rows of each problem kind; ``usable`` the
    conversations none of them hit (empty when the format is unknown).
    """

    table: Table
    detection: Detection
    flagged: dict[str, list[int]]
    usable: list[Conversation]

    @property
    def records(self) -> int:
        """Rows read plus lines that could not be: everything the user wrote as a row."""
        t = self.table
        return len(t.rows) + len(t.malformed_rows) + len(t.too_deep_rows)


def check_source(
    source: str,
    *,
    split: str | None = None,
    format: str = "auto",
    mapping: dict[str, str] | None = None,
    drop_duplicates: bool = True,
    lap: Callable[[str], None] = lambda stage: None,
) -> Checked:
    """Read, detect, normalise and find problems: the pure-Python part of inspecting."""
    table = read_table(source, split)
    lap("read")
    detection = detect(table, format, mapping)
    lap("detect")
    flagged = {"malformed_line": table.malformed_rows, "too_deep": table.too_deep_rows}
    if detection.format == "unknown":
        return Checked(table, detection, flagged, [])
    conversations, flagged["malformed_row"] = normalise(table, detection)
    lap("normalise")
    flagged.update(find_problems(conversations))
    if not drop_duplicates:
        flagged.pop("duplicate")
    usable = repair(conversations, flagged)
    lap("problems")
    return Checked(table, detection, flagged, usable)


def _measure(
    report_: InspectReport,
    usable: list[Conversation],
    tokenizer: Any,
    max_seq_length: int,
    overflow: str,
    flagged: dict[str, list[int]],
    details: dict[str, str],
) -> list[Conversation]:
    """Render with the student's template: token stats, a trained-token preview, ``too_long``.

    Returns the conversations that survive the overflow policy. A pre-flight
    gate that would stop training is kept as ``report_.gate`` rather than raised,
    so the rest of the report still shows.
    """
    from engine.data.render import preview_segments, render_conversations

    try:
        rendered = render_conversations(
            usable, tokenizer, max_seq_length=max_seq_length, overflow=overflow, raise_gates=False
        )
    except UserError as error:  # a template that is not the student's: no stats to show
        report_.gate = f"{error} {error.hint}".strip()
        return usable
    if rendered.gate:
        report_.gate = f"{rendered.gate} {rendered.gate.hint}".strip()
    cut = rendered.overflow
    stats = rendered.token_stats()
    stats.update(
        answer_cut_partly=cut.answer_cut_partly, answer_cut_entirely=cut.answer_cut_entirely
    )
    report_.tokens = stats
    report_.histogram = histogram(rendered.lengths)
    flagged["too_long"] = rendered.too_long_rows(usable)
    fate = (
        _(
            " ({max_seq_length} tokens): {partly} would lose part of the answer and {entirely} "
            "all of it; they are dropped (--overflow truncate keeps those with some answer left)"
        )
        if overflow == "drop"
        else _(
            " ({max_seq_length} tokens): {partly} would lose part of the answer and {entirely} "
            "all of it; they are truncated, and those with no answer left are dropped"
        )
    )
    details["too_long"] = fate.format(
        max_seq_length=max_seq_length,
        partly=cut.answer_cut_partly,
        entirely=cut.answer_cut_entirely,
    )
    if cut.measured_in_part:
        details["too_long"] += _(
            "; {count} of them so long that only their start was tokenised "
            "(their lengths are at least those shown)"
        ).format(count=cut.measured_in_part)
    if rendered.rows:
        report_.preview = [tuple(s) for s in preview_segments(rendered.rows[0], tokenizer)]
    kept = {row.row for row in rendered.rows}
    return [c for c in usable if c.row in kept]


def histogram(lengths: list[int], bins: int = _HISTOGRAM_BINS) -> list[tuple[int, int, int]]:
    """Rows per token-length bin from the shortest row to the longest: ``(from, to, rows)``."""
    if not lengths:
        return []
    low, high = min(lengths), max(lengths)
    width = _round_up((high - low + 1) / bins)
    start = low // width
    counts = [0] * (high // width - start + 1)
    for n in lengths:
        counts[n // width - start] += 1
    return [((start + i) * width, (start + i + 1) * width - 1, n) for i, n in enumerate(counts)]


def _round_up(value: float) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value``."""
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= value:
                return step * scale
        scale *= 10


class _Clock:
    """Seconds spent per stage, for the benchmark and the TUI's status line."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self._last, 4)
        self._last = now
