"""Plain records shared by loading, format detection, repair and rendering.

Stdlib only, so the TUI can hold them without importing anything heavy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]
Message = dict[str, str]  # {"role": Role, "content": str}

FORMATS = ("alpaca", "sharegpt", "messages", "pair", "text", "unknown")


@dataclass
class Table:
    """Rows as read from a source, before any interpretation.

    ``malformed_rows`` holds the 1-based line numbers that could not be parsed
    (JSONL lines that are not JSON objects), ``too_deep_rows`` those nested too
    deep to parse; both are skipped, never fatal.
    ``line_numbers`` gives each row's line in the file when that differs from
    its position (JSONL with blank or skipped lines), so every problem report
    points at the line a user would open in an editor.
    """

    source: str
    columns: list[str]
    rows: list[dict[str, Any]]
    malformed_rows: list[int] = field(default_factory=list)
    too_deep_rows: list[int] = field(default_factory=list)
    kind: str = ""  # jsonl | json | csv | tsv | parquet | hub
    line_numbers: list[int] | None = None

    def row_numbers(self) -> list[int]:
        """The 1-based number a user knows each row by."""
        return self.line_numbers or list(range(1, len(self.rows) + 1))


@dataclass
class Detection:
    """What a table looks like and how its columns map onto chat roles.

    ``mapping`` keys depend on the format: alpaca ``instruction/input/output/system``;
    pair ``prompt/response/system``; sharegpt and messages ``conversations``;
    text ``text``. ``evidence`` explains the choice in plain words; ``mapping_source``
    says whether the user gave the mapping, it was read from column names and
    contents, or only guessed from column order (then check it).
    """

    format: str
    mapping: dict[str, str]
    evidence: str
    mapping_source: Literal["given", "detected", "guessed"] = "detected"


@dataclass
class Conversation:
    """One training example: chat messages plus optional teacher reasoning.

    ``row`` is the 1-based row number in the source, for problem reports;
    ``flags`` come from a teacher output file's ``meta.flags``, ``held_out`` from its
    ``meta.heldout`` (questions on the user's documents kept for eval, never trained on).
    """

    messages: list[Message]
    row: int
    reasoning: str | None = None
    flags: tuple[str, ...] = ()  # the teacher's quality flags (cut, empty, refusal), if any
    held_out: bool = False


@dataclass
class Problem:
    """One kind of problem found in a dataset, with the first few row numbers."""

    kind: str  # one of engine.data.problems.KINDS
    count: int
    rows: list[int]
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "count": self.count, "rows": self.rows, "message": self.message}
