"""Following a run: its events as the trainer writes them, one attempt at a time.

A follower (``stillroom attach``, the Train step, the tests) reads the attempt it
follows until its ending; earlier attempts are history. A trainer that died
without a terminal event gets its ending from ``summary.json``, else a synthesised
``crashed`` error with the tail of its log.

Stdlib + psutil only: the CLI and the TUI import this.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from engine import events as ev
from engine import run_events, spawn
from engine.i18n import _
from engine.run_dir import RunDir
from engine.run_events import EVENTS_FILE, Attempt, EventsUnreadable
from engine.trainer_process import child_alive, read_trainer


def read_events(run_dir: Path) -> list[ev.Event]:
    """Every readable event of the run, all attempts (damaged lines skipped)."""
    return run_events.load(Path(run_dir)).events


def crash_event(run_dir: Path) -> ev.Error:
    """What a child that died without a word left behind."""
    return ev.Error(
        kind="crashed",
        message=_(
            "the training process ended without finishing (killed, out of host memory, "
            "or a crash in native code)"
        ),
        hint=_("`stillroom train --resume {run}` continues from the newest whole checkpoint.").format(
            run=run_dir
        ),
        log_tail=log_tail(run_dir),
    )


def log_tail(run_dir: Path, lines: int = spawn.TAIL_LINES) -> str:
    """The last lines of the trainer's log."""
    return spawn.tail(RunDir(run_dir).log_file, lines)


def current_attempt(run_dir: Path) -> int:
    """The attempt a follower of the run follows: the live child's, else the newest one."""
    trainer = read_trainer(run_dir)
    if trainer is not None and trainer.attempt and child_alive(run_dir):
        return trainer.attempt
    try:
        found = run_events.attempts(read_events(run_dir))
    except EventsUnreadable:
        return 1
    return max(1, found[-1].number) if found else 1


def history(run_dir: Path, attempt: int) -> list[Attempt]:
    """The attempts before ``attempt``, oldest first (none if the events cannot be read)."""
    try:
        found = run_events.attempts(read_events(run_dir))
    except EventsUnreadable:
        return []
    return [a for a in found if 0 < a.number < attempt]


def follow(
    run_dir: Path,
    *,
    attempt: int | None = None,
    poll_s: float = 0.5,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[ev.Event]:
    """Every event of one attempt (by default the current one), as it is written, until its end.

    Earlier attempts are history (:func:`history`), never replayed. If the child is
    gone and no terminal event came, the ending ``summary.json`` records is used (a
    last line cut short), else a ``crashed`` error is synthesised (not written to
    the file: the next resume may still write the real ending). A damaged line is
    skipped (the first one with a warning); a file that cannot be read ends the
    following with an ``unreadable`` error. ``stop()`` true ends the following at
    the next poll (a follower that goes away while the run trains on).
    """
    run_dir = Path(run_dir)
    target = attempt or current_attempt(run_dir)
    reader = run_events.LineReader(run_dir / EVENTS_FILE)
    number, followed, warned = 0, Attempt(target), False
    quiet_since = time.monotonic()
    while not stop():
        try:
            read = reader.read()
        except EventsUnreadable as error:
            yield ev.Error(kind="unreadable", message=error.message, hint=error.hint)
            return
        for event in read:
            if isinstance(event, ev.Started):
                number = run_events.number_of(event, number)
                if number > target:  # a later attempt began: the followed one ended unheard
                    yield _lost_ending(run_dir, followed)
                    return
            if number != target:
                continue
            if event is None:
                if not warned:
                    warned = True
                    yield _damaged_warning(run_dir)
                continue
            followed.events.append(event)
            yield event
            if event.type in ev.TERMINAL:
                return
        if read:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 2 * poll_s and not child_alive(run_dir):
            if reader.behind():
                continue  # it wrote its ending as it went: read that, it is no crash
            yield _lost_ending(run_dir, followed)
            return
        time.sleep(poll_s)


def _lost_ending(run_dir: Path, attempt: Attempt) -> ev.Event:
    """An attempt that ended without its ending in the file: summary.json's, else a crash."""
    return run_events.ending_from_summary(run_dir, attempt) or crash_event(run_dir)


def _damaged_warning(run_dir: Path) -> ev.Warning:
    return ev.Warning(
        message=_("a damaged line in {path} was skipped").format(path=run_dir / EVENTS_FILE),
        hint=_("Training is not affected; `stillroom runs` counts the damaged lines."),
    )
