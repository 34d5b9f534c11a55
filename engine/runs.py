"""Run directories: create, start detached, read state, follow, cancel.

A run directory holds ``plan.toml`` (the plan as trained), ``events.jsonl``,
``train.log`` (library output), ``pid``, ``checkpoints/``, ``adapter/`` and
``summary.json``. Training runs in a child process started in a new session,
writing only to files there, so closing the terminal, losing SSH or killing
the follower never stops it. State is derived from the events since the last
``started`` plus whether the child is alive; a child that died without a
terminal event is reported as ``crashed`` with the tail of its log.

Stdlib + psutil only: the CLI and the TUI import this.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from engine import events as ev
from engine.errors import UserError
from engine.fileio import atomic_write_text, cannot_write
from engine.plan import Plan, load_plan, save_plan

STATES = ("starting", "running", "finished", "failed", "cancelled", "crashed")
LIVE = frozenset({"starting", "running"})

PLAN_FILE = "plan.toml"
EVENTS_FILE = "events.jsonl"
LOG_FILE = "train.log"
PID_FILE = "pid"
CANCEL_FILE = "cancel"


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
    """A fresh run directory holding the plan as it will be trained."""
    root = Path(plan.output.runs_dir)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = f"{plan.output.name}{suffix}-{stamp}"
    run_dir = root / base
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = root / f"{base}-{n}"
    try:
        run_dir.mkdir(parents=True)
        save_plan(_absolute_paths(plan), run_dir / PLAN_FILE)
    except OSError as error:  # e.g. a read-only working folder
        raise cannot_write(
            run_dir,
            error,
            "Run Stillroom from a folder you can write to, or set [output] runs_dir in the plan "
            "to one (an absolute path).",
        ) from None
    return run_dir.resolve()


def _absolute_paths(plan: Plan) -> Plan:
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


def start(run_dir: Path, *, probe: bool = False, env: dict[str, str] | None = None) -> int:
    """Start the training child for ``run_dir``, detached; returns its pid."""
    run_dir = Path(run_dir)
    (run_dir / CANCEL_FILE).unlink(missing_ok=True)
    repo_root = str(Path(__file__).resolve().parent.parent)
    child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (repo_root, child_env.get("PYTHONPATH", "")) if p
    )
    command = [sys.executable, "-m", "engine", "train", str(run_dir.resolve())]
    if probe:
        command.append("--probe")
    with open(run_dir / LOG_FILE, "ab") as log:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=child_env,
            cwd=str(run_dir),
        )
    write_pid(run_dir, child.pid)
    return child.pid


def write_pid(run_dir: Path, pid: int) -> None:
    """``pid start-time``: the start time tells our child from a recycled pid."""
    atomic_write_text(Path(run_dir) / PID_FILE, f"{pid} {_create_time(pid) or 0}\n")


def _create_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def child_alive(run_dir: Path) -> bool:
    """Whether this run's training process is still running (zombies count as dead)."""
    import psutil

    try:
        pid_text, created = (Path(run_dir) / PID_FILE).read_text().split()
        process = psutil.Process(int(pid_text))
        if float(created) and abs(process.create_time() - float(created)) > 1.0:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except (OSError, ValueError, psutil.Error):
        return False


def read_events(run_dir: Path) -> list[ev.Event]:
    from engine.fileio import read_jsonl

    found = []
    for record in read_jsonl(Path(run_dir) / EVENTS_FILE):
        try:
            found.append(ev.decode(record))
        except (ValueError, TypeError):
            continue
    return found


def _since_last_start(events: list[ev.Event]) -> list[ev.Event]:
    starts = [i for i, e in enumerate(events) if isinstance(e, ev.Started)]
    return events[starts[-1] :] if starts else events


def crash_event(run_dir: Path) -> ev.Error:
    """What a child that died without a word left behind."""
    return ev.Error(
        kind="crashed",
        message="the training process ended without finishing (killed, out of host memory, "
        "or a crash in native code)",
        hint=f"`stillroom train --resume {run_dir}` continues from the newest whole checkpoint.",
        log_tail=log_tail(run_dir),
    )


def log_tail(run_dir: Path, lines: int = 40) -> str:
    try:
        text = (Path(run_dir) / LOG_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def status(run_dir: Path) -> RunStatus:
    run_dir = Path(run_dir)
    events = _since_last_start(read_events(run_dir))
    result = RunStatus(name=run_dir.name, path=str(run_dir), state="starting")
    for event in events:
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
    if result.state == "starting":
        if any(isinstance(e, ev.Started) for e in events):
            result.state = "running"
        if not child_alive(run_dir):
            result.state, result.message = "crashed", "the training process is gone"
    return result


def list_runs(runs_dir: str | Path) -> list[RunStatus]:
    """Every run under ``runs_dir``, newest first."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    found = [status(p) for p in root.iterdir() if (p / PLAN_FILE).is_file()]
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
        raise UserError(f"{ref!r} matches several runs: {names}", hint="Give more of the name.")
    raise UserError(f"no run {ref!r} in {root}/", hint="`stillroom runs` lists them.")


def latest_live_run(runs_dir: str | Path = "runs") -> Path | None:
    """The newest run still training, for re-attaching."""
    for run in list_runs(runs_dir):
        if run.state in LIVE:
            return Path(run.path)
    return None


def follow(
    run_dir: Path, *, poll_s: float = 0.5, stop: Callable[[], bool] = lambda: False
) -> Iterator[ev.Event]:
    """Every event of the current attempt, as it is written, until a terminal one.

    If the child is gone and no terminal event came, a ``crashed`` error is
    synthesised (it is not written to the file: the next resume may still write
    the real ending). ``stop()`` true ends the following at the next poll (a
    follower that goes away, e.g. a closing app, while the run trains on).
    """
    run_dir = Path(run_dir)
    path = run_dir / EVENTS_FILE
    events = read_events(run_dir)
    start = max((i for i, e in enumerate(events) if isinstance(e, ev.Started)), default=0)
    offset = 0
    buffer = ""
    seen = 0
    quiet_since = time.monotonic()
    while not stop():
        chunk = ""
        if path.exists():
            with open(path, encoding="utf-8") as handle:
                handle.seek(offset)
                chunk = handle.read()
                offset = handle.tell()
        buffer += chunk
        *lines, buffer = buffer.split("\n")
        for line in lines:
            if not line.strip():
                continue
            try:
                event = ev.decode(line)
            except (ValueError, TypeError):
                continue
            seen += 1
            if seen - 1 < start:
                continue
            yield event
            if event.type in ev.TERMINAL:
                return
        if chunk:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 2 * poll_s and not child_alive(run_dir):
            if path.exists() and path.stat().st_size > offset:
                continue  # it wrote its ending as it went: read that, it is no crash
            yield crash_event(run_dir)
            return
        time.sleep(poll_s)


def request_cancel(run_dir: Path) -> bool:
    """Ask the child to stop and save its adapter; False if it is not running."""
    run_dir = Path(run_dir)
    if not child_alive(run_dir):
        return False
    (run_dir / CANCEL_FILE).touch()
    pid = read_pid(run_dir)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    return True


def read_pid(run_dir: Path) -> int | None:
    """The training child's pid as recorded at start (alive or not)."""
    try:
        return int((Path(run_dir) / PID_FILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def prepare_resume(ref: str, runs_dir: str | Path = "runs") -> Path:
    """Check that a run can be resumed and return its directory."""
    run_dir = find_run(ref, runs_dir)
    state = status(run_dir).state
    if state in LIVE:
        raise UserError(f"{run_dir.name} is still running", hint=f"`stillroom attach {run_dir}`")
    if state == "finished":
        raise UserError(f"{run_dir.name} already finished", hint="Its adapter is in adapter/.")
    load_plan(run_dir / PLAN_FILE)
    return run_dir
