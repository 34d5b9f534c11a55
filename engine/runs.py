"""Run directories: create, start detached, read state, find, cancel, resume.

A run directory holds ``plan.toml`` (the plan as trained), ``events.jsonl``,
``train.log`` (library output), ``pid``, ``trainer.lock``, ``checkpoints/``,
``adapter/`` and ``summary.json`` (:class:`~engine.run_dir.RunDir` names them).
Training runs in a child process started in a new session (:mod:`engine.spawn`),
writing only to files there, so closing the terminal, losing SSH or killing the
follower never stops it. One run folder has at most one trainer
(:mod:`engine.run_lock`). Each launch of the trainer is an attempt, numbered on
its ``started`` event; state comes from the newest attempt plus whether its
child is alive (:mod:`engine.trainer_process`), and a child that died without a
terminal event is reported as ``crashed`` with the tail of its log. Following a
run's events is :mod:`engine.run_follow`'s.

Stdlib + psutil only: the CLI and the TUI import this.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from engine import events as ev
from engine import run_events, run_lock, spawn
from engine.errors import UserError
from engine.fileio import cannot_write
from engine.i18n import _
from engine.plan import Plan, load_plan, save_plan
from engine.run_dir import ADAPTER_DIR, CANCEL_FILE, LOG_FILE, PID_FILE, PLAN_FILE, RunDir
from engine.run_events import EVENTS_FILE, Attempt, EventsUnreadable
from engine.run_follow import crash_event, current_attempt, follow, history, log_tail, read_events
from engine.trainer_process import (
    Trainer,
    child_alive,
    read_pid,
    read_trainer,
    started_text,
    trainer_process,
    write_pid,
)

# Callers find a run's names and its trainer and follower here, as well as in the modules
# that define them (engine.run_dir, engine.trainer_process, engine.run_follow).
__all__ = [
    "ADAPTER_DIR", "CANCEL_FILE", "EVENTS_FILE", "LOG_FILE", "PID_FILE", "PLAN_FILE",
    "crash_event", "current_attempt", "follow", "history", "log_tail", "read_events",
    "read_pid", "write_pid",
]  # fmt: skip

STATES = ("starting", "running", "finished", "failed", "cancelled", "crashed", "unreadable")
LIVE = frozenset({"starting", "running"})
EXIT_WAIT_S = 30.0  # a trainer that wrote its ending may take this long to exit (CPU torch)


@dataclass
class RunStatus:
    """One run as `stillroom runs` shows it."""

    name: str
    path: str
    state: str
    step: int = 0
    max_steps: int | None = None
    loss: float | None = None
    started_at: float | None = None
    backend: str = ""
    message: str = ""
    attempt: int = 0
    damaged_lines: int = 0

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


class EventWriter:
    """``emit`` for a run: one whole JSON line per event, appended to events.jsonl."""

    def __init__(self, run_dir: Path):
        import threading

        self.path = run_dir / EVENTS_FILE
        self._lock = threading.Lock()

    def __call__(self, event: ev.Event) -> None:
        line = ev.encode(event) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()


def create_run(plan: Plan, *, suffix: str = "") -> Path:
    """A fresh run directory holding the plan as it will be trained.

    Made with an exclusive ``mkdir``, so two runs started in the same second get
    a folder each, never one between them.
    """
    root = Path(plan.output.runs_dir)
    base = f"{plan.output.name}{suffix}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    n, run_dir = 1, root / base
    try:
        root.mkdir(parents=True, exist_ok=True)
        while True:
            run_dir = root / (base if n == 1 else f"{base}-{n}")
            try:
                run_dir.mkdir()
                break
            except FileExistsError:
                n += 1
        save_plan(absolute_paths(plan), run_dir / PLAN_FILE)
    except OSError as error:  # e.g. a read-only working folder
        raise cannot_write(
            run_dir,
            error,
            "Run Stillroom from a folder you can write to, or set [output] runs_dir in the plan "
            "to one (an absolute path).",
        ) from None
    return run_dir.resolve()


def absolute_paths(plan: Plan) -> Plan:
    """Local dataset and model paths made absolute, so the run works from any folder."""

    def absolute(value: str) -> str:
        path = Path(value).expanduser()
        return str(path.resolve()) if path.exists() else value

    return plan.model_copy(
        update={
            "dataset": plan.dataset.model_copy(update={"source": absolute(plan.dataset.source)}),
            "student": plan.student.model_copy(update={"model": absolute(plan.student.model)}),
        }
    )


def start(run_dir: Path, *, probe: bool = False, env: dict[str, str] | None = None) -> Trainer:
    """Start the training child for ``run_dir``, detached, as the run's next attempt.

    Takes the run's lock first and hands it to the child, which holds it until it
    exits; if another process trains the folder, raises a ``UserError`` naming it
    and changes nothing in the folder.
    """
    run_dir = Path(run_dir).resolve()
    fd = _lock_once_ended(run_dir)
    if fd is None:
        raise busy_error(run_dir)
    try:
        attempt = run_events.next_attempt(run_events.load(run_dir).events)
        (run_dir / CANCEL_FILE).unlink(missing_ok=True)
        args = [str(run_dir), "--attempt", str(attempt), "--lock-fd", str(fd)]
        child = spawn.start_detached(
            "train",
            [*args, "--probe"] if probe else args,
            log=run_dir / LOG_FILE,
            append=True,
            cwd=run_dir,
            pass_fds=(fd,),
            env=env,
        )
        return write_pid(run_dir, child.pid, attempt)
    finally:
        os.close(fd)  # the child's copy keeps the lock


def _lock_once_ended(run_dir: Path, wait_s: float = EXIT_WAIT_S) -> int | None:
    """The run's lock; a trainer that has written its ending gets ``wait_s`` to exit first."""
    deadline = time.monotonic() + wait_s
    while (fd := run_lock.try_lock(run_dir)) is None:
        if time.monotonic() > deadline or status(run_dir).state in LIVE:
            return None
        time.sleep(0.2)
    return fd


def busy_error(run_dir: Path) -> UserError:
    """What a second launch on a run folder is told: which process trains it."""
    trainer, process = read_trainer(run_dir), trainer_process(run_dir)
    holder = (
        _("process {pid} (started {when})").format(
            pid=trainer.pid, when=started_text(trainer.created)
        )
        if trainer is not None and process is not None
        else _("another process that is starting up")
    )
    name = Path(run_dir).name
    if process is not None and status(run_dir).state not in LIVE:
        return UserError(
            _("{name}'s trainer, {holder}, has ended the run but has not exited yet").format(
                name=name, holder=holder
            ),
            hint=_(
                "Try again in a minute; if it does not exit, `kill {pid}` ends it "
                "(the run's files are complete)."
            ).format(pid=process.pid),
        )
    return UserError(
        _("{name} is being trained by {holder}; a run folder has one trainer at a time").format(
            name=name, holder=holder
        ),
        hint=_("Follow it: `stillroom attach {run}`; stop it: `stillroom cancel {run}`.").format(
            run=run_dir
        ),
    )


def status(run_dir: Path) -> RunStatus:
    """The run's newest attempt: its state, step and loss (never raises on a damaged file)."""
    run_dir = Path(run_dir)
    result = RunStatus(name=run_dir.name, path=str(run_dir), state="starting")
    try:
        log = run_events.load(run_dir)
    except EventsUnreadable as error:
        result.state, result.message = "unreadable", error.message
        return result
    result.damaged_lines = log.damaged
    found = run_events.attempts(log.events)
    latest = found[-1] if found else Attempt(0)
    trainer, alive = read_trainer(run_dir), child_alive(run_dir)
    if alive and trainer and trainer.attempt and trainer.attempt > latest.number:
        result.attempt, result.started_at = trainer.attempt, trainer.created
        return result  # launched, not yet started: what came before is history
    result.attempt = latest.number
    for event in latest.events:
        _take(result, event)
    if latest.ending is None:
        if latest.started is not None:
            result.state = "running"
        if not alive:
            recorded = run_events.ending_from_summary(run_dir, latest)
            if recorded is not None:
                _take(result, recorded)
                result.message = "the ending is read from summary.json (its event line is damaged)"
            else:
                result.state, result.message = "crashed", "the training process is gone"
    return result


def _take(result: RunStatus, event: ev.Event) -> None:
    if isinstance(event, ev.Started):
        result.started_at, result.backend = event.t, event.backend
        result.max_steps = event.max_steps
    elif isinstance(event, ev.Step):
        result.step, result.max_steps, result.loss = event.step, event.max_steps, event.loss
    elif isinstance(event, ev.Finished):
        result.state, result.step = "finished", event.steps or result.step
    elif isinstance(event, ev.Cancelled):
        result.state, result.step = "cancelled", event.step
    elif isinstance(event, ev.Error):
        result.state = "crashed" if event.kind == "crashed" else "failed"
        result.message = event.message


def list_runs(runs_dir: str | Path) -> list[RunStatus]:
    """Every run under ``runs_dir``, newest first."""
    root = Path(runs_dir)
    try:
        folders = [p for p in root.iterdir() if RunDir(p).is_run]
    except OSError:  # no runs folder yet (or not one we may read)
        return []
    found = [status(p) for p in folders]
    return sorted(found, key=lambda s: s.started_at or 0.0, reverse=True)


def find_run(ref: str, runs_dir: str | Path = "runs") -> Path:
    """A run by path, by name under ``runs_dir``, or by a unique name prefix."""
    path = Path(ref)
    if (path / PLAN_FILE).is_file():
        return path
    root = Path(runs_dir)
    if (root / ref / PLAN_FILE).is_file():
        return root / ref
    matches = (
        [p for p in root.glob(f"{ref}*") if (p / PLAN_FILE).is_file()] if root.is_dir() else []
    )
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(sorted(p.name for p in matches))
        raise UserError(
            _("{ref!r} matches several runs: {names}").format(ref=ref, names=names),
            hint=_("Give more of the name."),
        )
    raise UserError(
        _("no run {ref!r} in {root}/").format(ref=ref, root=root),
        hint=_("`stillroom runs` lists them."),
    )


def newest_trained(runs_dir: str | Path, name: str = "") -> Path | None:
    """The newest run (named ``name-…`` when a name is given) that is trained and not
    training now: what chat, eval and export take when no run is named."""
    for run in list_runs(runs_dir):
        if run.state not in LIVE and run.name.startswith(f"{name}-" if name else ""):
            if RunDir(run.path).trained:
                return Path(run.path)
    return None


def latest_live_run(runs_dir: str | Path = "runs") -> Path | None:
    """The newest run still training, for re-attaching."""
    for run in list_runs(runs_dir):
        if run.state in LIVE:
            return Path(run.path)
    return None


def cancel(run_dir: Path) -> None:
    """Ask the run's trainer to stop and save its adapter.

    Only a process that is verifiably this run's live trainer is signalled; a run
    that has ended, or whose pid file names some other process, raises a
    ``UserError`` saying there is nothing to cancel, and nothing is signalled.
    """
    run_dir = Path(run_dir)
    process = trainer_process(run_dir)
    state = status(run_dir)
    if process is None or state.state not in LIVE:
        raise UserError(
            _("{name} is not training ({state}): there is nothing to cancel").format(
                name=run_dir.name, state=state.state
            ),
            hint=_nothing_signalled(run_dir, state),
        )
    (run_dir / CANCEL_FILE).touch()
    import psutil

    try:
        process.send_signal(signal.SIGTERM)  # psutil re-checks the pid was not reused
    except psutil.NoSuchProcess:
        pass


def _nothing_signalled(run_dir: Path, state: RunStatus) -> str:
    import psutil

    sentences = [_("No process was signalled. `stillroom runs` shows every run's state.")]
    trainer = read_trainer(run_dir)
    if trainer is not None and psutil.pid_exists(trainer.pid):
        sentences.insert(
            0,
            _(
                "Its pid file names process {pid}, which is not this run's trainer "
                "(the trainer ended and the pid now belongs to another program): it was left "
                "alone."
            ).format(pid=trainer.pid),
        )
    if state.state in ("crashed", "failed", "cancelled"):
        sentences.append(_("`stillroom train --resume {run}` continues it.").format(run=run_dir))
    return " ".join(sentences)


def request_cancel(run_dir: Path) -> bool:
    """:func:`cancel` for the wizard: False when there was nothing to cancel."""
    try:
        cancel(run_dir)
    except UserError:
        return False
    return True


def prepare_resume(ref: str, runs_dir: str | Path = "runs") -> Path:
    """Check that a run can be resumed and return its directory."""
    run_dir = find_run(ref, runs_dir)
    state = status(run_dir)
    if state.state == "unreadable":
        raise UserError(
            _("{name} cannot be resumed: {why}").format(name=run_dir.name, why=state.message),
            hint=_("Move {path} aside, then resume again.").format(path=run_dir / EVENTS_FILE),
        )
    if state.state in LIVE:
        raise busy_error(run_dir)
    if state.state == "finished":
        raise UserError(
            _("{name} already finished").format(name=run_dir.name),
            hint=_("Its adapter is in adapter/."),
        )
    load_plan(run_dir / PLAN_FILE)
    return run_dir
