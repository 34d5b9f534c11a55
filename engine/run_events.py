"""Reading a run's ``events.jsonl``: damaged lines skipped and counted, attempts told apart.

The file is the run's record, so reading it must survive what disks and people
do to files: a line cut inside a multi-byte character, random bytes, a value of
the wrong kind, even a folder of that name. A line that does not decode to an
event is skipped and counted; a file that cannot be opened at all raises
:class:`EventsUnreadable`, which callers show as the run's state. Every resume
appends an attempt that begins with ``started``; :func:`attempts` splits the
events by attempt, numbering files written before ``started`` had an
``attempt`` field by their order.

Stdlib only: the CLI and the TUI import this.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from engine import events as ev
from engine.errors import UserError
from engine.i18n import _

EVENTS_FILE = "events.jsonl"


class EventsUnreadable(UserError):
    """``events.jsonl`` exists but cannot be read at all (a folder, no permission, an I/O error)."""


@dataclass
class EventLog:
    """What could be read: the events in order, and how many lines were damaged."""

    events: list[ev.Event] = field(default_factory=list)
    damaged: int = 0


def decode_line(raw: bytes) -> ev.Event | None:
    """The event on one line of the file; ``None`` when the line is damaged."""
    try:
        return ev.decode(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, TypeError, RecursionError):
        return None


def load(run_dir: Path) -> EventLog:
    """Every readable event of the run (none if the file does not exist yet)."""
    path = Path(run_dir) / EVENTS_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return EventLog()
    except OSError as error:
        raise unreadable(path, error) from None
    log = EventLog()
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        event = decode_line(raw)
        if event is None:
            log.damaged += 1
        else:
            log.events.append(event)
    return log


def unreadable(path: Path, error: OSError) -> EventsUnreadable:
    reason = error.strerror or type(error).__name__
    return EventsUnreadable(
        _("{name} cannot be read: {reason}").format(name=path.name, reason=reason),
        hint=_(
            "Move it aside (`mv {path} {path}.broken`) to list and resume the run again; the run's "
            "checkpoints and adapter are not affected."
        ).format(path=path),
    )


class LineReader:
    """Reads the whole lines appended to a file since the last call, as events or ``None``.

    A line still being written (no newline yet) waits for the next call.
    """

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self._pending = b""

    def read(self) -> list[ev.Event | None]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        except OSError as error:
            raise unreadable(self.path, error) from None
        self.offset += len(chunk)
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        return [decode_line(raw) for raw in lines if raw.strip()]

    def behind(self) -> bool:
        """Whether the file has grown since the last read."""
        try:
            return self.path.stat().st_size > self.offset
        except OSError:
            return False


@dataclass
class Attempt:
    """One launch of a run's trainer: its events from its ``started`` on."""

    number: int
    events: list[ev.Event] = field(default_factory=list)

    @property
    def started(self) -> ev.Started | None:
        first = self.events[0] if self.events else None
        return first if isinstance(first, ev.Started) else None

    @property
    def ending(self) -> ev.Event | None:
        return next((e for e in reversed(self.events) if e.type in ev.TERMINAL), None)

    @property
    def last_step(self) -> ev.Step | None:
        return next((e for e in reversed(self.events) if isinstance(e, ev.Step)), None)


def number_of(started: ev.Started, previous: int) -> int:
    """The attempt a ``started`` opens, after attempt ``previous`` (old files carry no number)."""
    return max(started.attempt, previous + 1)


def attempts(events: list[ev.Event]) -> list[Attempt]:
    """The events split by attempt, oldest first (events before any ``started`` are attempt 0)."""
    found = [Attempt(0)]
    for event in events:
        if isinstance(event, ev.Started):
            found.append(Attempt(number_of(event, found[-1].number)))
        found[-1].events.append(event)
    return [a for a in found if a.number or a.events]


def next_attempt(events: list[ev.Event]) -> int:
    """The number the next launch of this run's trainer gets."""
    found = attempts(events)
    return (found[-1].number if found else 0) + 1


def summary_state(run_dir: Path, attempt: Attempt) -> dict | None:
    """``summary.json`` when this attempt wrote it (the trainer writes it just before its ending).

    A summary without an ``attempt`` (written by an older Stillroom) counts when it
    is newer than the attempt's ``started``.
    """
    path = Path(run_dir) / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        written = path.stat().st_mtime
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(summary, dict) or summary.get("state") not in ("finished", "cancelled"):
        return None
    if "attempt" in summary:
        return summary if summary["attempt"] == attempt.number else None
    started = attempt.started
    return summary if started is not None and written >= started.t else None


def ending_from_summary(run_dir: Path, attempt: Attempt) -> ev.Event | None:
    """The ending ``summary.json`` records for an attempt whose last event line was lost."""
    summary = summary_state(run_dir, attempt)
    if summary is None:
        return None
    adapter = summary.get("adapter_path") if isinstance(summary.get("adapter_path"), str) else ""
    steps = int(_number(summary, "steps") or 0)
    if summary["state"] == "cancelled":
        return ev.Cancelled(step=steps, adapter_path=adapter)
    return ev.Finished(
        adapter_path=adapter,
        train_loss=_number(summary, "train_loss"),
        runtime_s=float(_number(summary, "runtime_s") or 0.0),
        steps=steps,
    )


def _number(record: dict, key: str) -> float | None:
    value = record.get(key)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
