"""Starting a child job, ``python -m engine JOB ...``, and reading its events back.

The one place that knows how a child is started: the interpreter and entry
point, its environment (unbuffered, the source tree importable, so no install is
needed) and where its output goes. Two shapes:

- detached (train, eval, export): its own session, stdout and stderr to files,
  never a pipe that a closed screen could leave undrained, so it finishes even
  when nobody watches. Training writes ``events.jsonl`` itself; eval and export
  print their events on stdout, which goes to an events file; :func:`follow_file`
  tails it.
- piped (chat-serve, prepare): events on a stdout pipe, library chatter to a log
  file; :func:`read_pipe` reads them.

Either reader ends with exactly one terminal event: the child's own, with its
exit status added when it is an ``error``, or, when it died without one, an
``error`` of kind ``crashed`` that carries its exit status and the tail of its log.

Stdlib only: the TUI imports this.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

from engine import events as ev
from engine.i18n import _
from engine.run_events import LineReader, decode_line

REPO_ROOT = Path(__file__).resolve().parents[1]
POLL_S = 0.1
TAIL_LINES = 40


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment plus ``extra``, unbuffered, with the source tree importable."""
    env = {**os.environ, **(extra or {}), "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


def command(job: str, args: Sequence[str]) -> list[str]:
    """The command line of a child job."""
    return [sys.executable, "-m", "engine", job, *args]


def start_detached(
    job: str,
    args: Sequence[str],
    *,
    log: Path,
    events: Path | None = None,
    append: bool = False,
    cwd: Path | None = None,
    pass_fds: Sequence[int] = (),
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``job`` in its own session, so it outlives whoever started it.

    Its stderr (and stdout, unless ``events`` names a file for it) goes to ``log``,
    appended to when ``append``, else started afresh.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    mode = "ab" if append else "wb"
    with open(log, mode) as log_file, open(events or os.devnull, "wb") as events_file:
        return subprocess.Popen(
            command(job, args),
            stdin=subprocess.DEVNULL,
            stdout=events_file if events else log_file,
            stderr=log_file if events else subprocess.STDOUT,
            start_new_session=True,
            env=child_env(env),
            cwd=str(cwd) if cwd else None,
            pass_fds=tuple(pass_fds),
        )


def start_piped(
    job: str, args: Sequence[str], *, log: Path, requests: bool = False
) -> subprocess.Popen[str]:
    """``job`` with its events on a stdout pipe and its chatter appended to ``log``.

    ``requests`` opens its stdin for requests (chat-serve); a child that serves
    exits when its stdin closes, so it never outlives the parent that feeds it.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as log_file:
        return subprocess.Popen(
            command(job, args),
            stdin=subprocess.PIPE if requests else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            encoding="utf-8",
            bufsize=1,
            env=child_env(),
        )


def emitter(
    stream: IO[str], gone: Callable[[], None] | None = None
) -> Callable[[ev.Event], None]:
    """The child's side: each event as one whole JSON line on ``stream``, flushed.

    A reader that went away (a closed pipe) is no failure of the job's: its events are
    dropped, and ``gone`` is called (generation stops at its next answer, keeping those
    in flight) rather than the job dying mid-write. Without ``gone`` the error is raised.
    """

    def emit(event: ev.Event) -> None:
        try:
            stream.write(ev.encode(event) + "\n")
            stream.flush()
        except BrokenPipeError:
            if gone is None:
                raise
            gone()

    return emit


def read_pipe(child: subprocess.Popen[str], log: Path) -> Iterator[ev.Event]:
    """Every event the child writes on its stdout, then its ending once it has exited."""
    assert child.stdout is not None
    held: list[ev.Event] = []
    yield from _passed_on(map(_decoded, child.stdout), held)
    yield _ending(held, child.wait(), log)


def follow_file(
    child: subprocess.Popen[bytes], events: Path, log: Path, stop: Callable[[], bool]
) -> Iterator[ev.Event]:
    """Every event the child writes to ``events``, as it writes it, then its ending.

    Ends early, without an ending, once ``stop()`` says nobody is watching any more.
    """
    reader, held = LineReader(events), []
    while True:
        exited = child.poll() is not None  # checked before reading, so no line is missed
        yield from _passed_on(reader.read(), held)
        if exited:
            break
        if stop():
            return
        time.sleep(POLL_S)
    yield _ending(held, child.returncode, log)


def _decoded(line: str) -> ev.Event | None:
    return decode_line(line.encode("utf-8", "replace")) if line.strip() else None


def _passed_on(events: Iterable[ev.Event | None], held: list[ev.Event]) -> Iterator[ev.Event]:
    """The events (``None``: a line that is not one) up to the ending, which goes to ``held``."""
    for event in events:
        if event is None or held:
            continue
        if event.type in ev.TERMINAL:
            held.append(event)
        else:
            yield event


def _ending(held: list[ev.Event], code: int, log: Path) -> ev.Event:
    """The child's own ending (an ``error`` with its exit status), else a crash from its log."""
    ending = held[0] if held else None
    if isinstance(ending, ev.Error):
        return dataclasses.replace(ending, exit_code=code)
    if ending is not None:
        return ending
    said = tail(log)
    last = next((line for line in reversed(said.splitlines()) if line.strip()), "")
    return ev.Error(
        kind="crashed",
        message=last.strip()
        or _("the process ended without a word (exit {code})").format(code=code),
        hint=_("The whole output is in {path}.").format(path=log),
        log_tail=said,
        exit_code=code,
    )


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ("" when there is none)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
