"""The teacher's output: an append-only JSONL file that is also the resume index.

Each finished answer is one line, written with a single ``write`` and fsynced
before it counts as done, so a run killed at any moment loses only the answers
still in flight. A prompt is known by the content it was asked with (system
prompt + user turn), never by its line number, so editing or reordering the
prompt file does not re-buy answers.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.fileio import append_jsonl, read_jsonl
from engine.i18n import _


def prompt_key(system: str | None, user: str) -> str:
    """The identity of a prompt: a hash of exactly what the teacher was asked."""
    blob = json.dumps([system or "", user], ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def record_key(record: dict[str, Any]) -> str | None:
    """The :func:`prompt_key` of a written record, from its messages."""
    messages = record.get("messages")
    if not isinstance(messages, list):
        return None
    system = next((m.get("content") for m in messages if m.get("role") == "system"), None)
    user = next((m.get("content") for m in messages if m.get("role") == "user"), None)
    return None if user is None else prompt_key(system, user)


def done_keys(path: str | Path) -> set[str]:
    """Keys of the prompts already answered in ``path`` (read only; torn lines skipped)."""
    return {key for record in read_jsonl(path) if (key := record_key(record))}


def repair_tail(path: Path) -> int:
    """Cut a torn last line (no newline: the writer died mid-line); return bytes cut.

    Without this, the next append would glue a good answer onto the torn one and
    both would be unreadable.
    """
    try:
        handle = open(path, "rb+")
    except FileNotFoundError:
        return 0
    with handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return 0
        keep = size
        block = 65536
        while keep > 0:
            start = max(0, keep - block)
            handle.seek(start)
            chunk = handle.read(keep - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            keep = start
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
        return size - keep


class Store:
    """The output file of one generation job."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            raise UserError(
                _("{path} is a folder").format(path=self.path),
                hint=_("Give --out a .jsonl file name."),
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.repaired_bytes = repair_tail(self.path)

    def records(self) -> Iterator[dict[str, Any]]:
        return read_jsonl(self.path)

    def done_keys(self) -> set[str]:
        return done_keys(self.path)

    def append(self, record: dict[str, Any]) -> None:
        """Write one finished answer and make it durable before returning."""
        append_jsonl(self.path, record, fsync=True)
