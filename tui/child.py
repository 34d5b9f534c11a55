"""A child job seen from the TUI: every event it writes arrives as one message, JobEvent.

The TUI never imports the ML stack (nor the teacher's client), so teacher generation,
chat serving, evaluation and export run as ``python -m engine JOB`` children (started by :mod:`engine.spawn`). A thread
worker reads the child's events and posts each as a :class:`JobEvent`; a screen
or widget handles that one message type, whatever the job. Every job's last
message is its terminal event (``finished`` or ``error``, the reader synthesising
a ``crashed`` error for a child that died without a word), so an error always
reaches the screen with its hint.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from textual.message import Message

from engine import events as ev
from engine import spawn
from engine.run_dir import RunDir


@dataclass(frozen=True, eq=False)
class ChildJob:
    """One started child: its process, the run it works on and where its output goes."""

    job: str
    process: subprocess.Popen
    run_dir: Path
    log: Path


class JobEvent(Message):
    """One event of a child job (``job`` None: said for a job that never started)."""

    def __init__(self, event: ev.Event, job: ChildJob | None = None) -> None:
        super().__init__()
        self.event = event
        self.job = job

    def can_replace(self, message: Message) -> bool:
        """A waiting ``progress`` of the same child is stale once a newer one comes."""
        return (
            isinstance(message, JobEvent)
            and message.job is self.job
            and isinstance(message.event, ev.Progress)
            and isinstance(self.event, ev.Progress)
        )


def run_detached(
    job: str, args: Sequence[str], run_dir: Path, post: Callable[[JobEvent], None],
    stop: Callable[[], bool],
) -> None:  # fmt: skip
    """Start ``job`` detached (it outlives the screen) and post its events until it ends.

    Its library output goes to ``RUN/JOB.log``, its events to ``RUN/JOB.events.jsonl``;
    ``stop()`` true ends the following, not the child.
    """
    run = RunDir(run_dir)
    log = run.job_log(job)
    try:
        process = spawn.start_detached(job, args, log=log, events=run.job_events(job))
    except OSError as error:
        post(JobEvent(cannot_start(error)))
        return
    child = ChildJob(job, process, run.path, log)
    for event in spawn.follow_file(process, run.job_events(job), log, stop):
        post(JobEvent(event, child))


def run_piped(
    job: str, args: Sequence[str], folder: Path, log: Path, post: Callable[[JobEvent], None],
    *, requests: bool = False,
) -> None:  # fmt: skip
    """Start ``job`` with its events on a pipe and post them until it exits.

    Every message carries the child, so the receiver can write requests to its
    stdin (``requests``), or stop it, from its first event on. ``folder`` is where
    the job works (a run folder; the answers' folder for generate).
    """
    try:
        process = spawn.start_piped(job, args, log=log, requests=requests)
    except OSError as error:
        post(JobEvent(cannot_start(error)))
        return
    child = ChildJob(job, process, Path(folder), log)
    for event in spawn.read_pipe(process, log):
        post(JobEvent(event, child))


def run_serving(job: str, run_dir: Path, log: Path, post: Callable[[JobEvent], None]) -> None:
    """A serving ``job`` for ``run_dir``, fed requests on its stdin (see :func:`run_piped`)."""
    run_piped(job, [str(run_dir)], run_dir, log, post, requests=True)


def cannot_start(error: OSError) -> ev.Error:
    return ev.Error(kind="exception", message=str(error), hint="Check the run folder.")


def stop_serving(child: ChildJob) -> None:
    """Ask a serving child to go: stdin closed (it exits after loading) and SIGTERM now."""
    process = child.process
    try:
        if process.stdin is not None:
            process.stdin.close()
    except OSError:
        pass
    stop(child)


def stop(child: ChildJob) -> None:
    """SIGTERM, if it still runs: a job stops at its next safe point (generate: once the
    answers in flight are saved) and still ends with its terminal event."""
    if child.process.poll() is None:
        child.process.terminate()
