"""Which process trains a run folder: the ``pid`` file, and telling our trainer from a stranger.

The ``pid`` file reads ``PID START_TIME ATTEMPT``. A process counts as the run's
trainer only if both pid and start time match and it trains no other run folder,
so a recycled pid, or a copied run folder naming its original's trainer, is never
taken for it (and ``cancel`` never signals a stranger).

Stdlib + psutil (imported on use).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from engine.fileio import atomic_write_text
from engine.run_dir import PID_FILE

if TYPE_CHECKING:
    import psutil


@dataclass(frozen=True)
class Trainer:
    """The run's training process as recorded at launch: pid, start time, attempt."""

    pid: int
    created: float  # psutil's create_time; 0 when it could not be read
    attempt: int | None = None


def write_pid(run_dir: Path, pid: int, attempt: int | None = None) -> Trainer:
    """``pid start-time attempt``: the start time tells our child from a recycled pid."""
    trainer = Trainer(pid, _create_time(pid) or 0.0, attempt)
    fields = [str(pid), repr(trainer.created)] + ([str(attempt)] if attempt else [])
    atomic_write_text(Path(run_dir) / PID_FILE, " ".join(fields) + "\n")
    return trainer


def read_trainer(run_dir: Path) -> Trainer | None:
    """The trainer recorded at launch (alive or not); older files carry no attempt."""
    try:
        parts = (Path(run_dir) / PID_FILE).read_text(encoding="utf-8").split()
        attempt = int(parts[2]) if len(parts) > 2 else None
        return Trainer(int(parts[0]), float(parts[1]) if len(parts) > 1 else 0.0, attempt)
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None


def read_pid(run_dir: Path) -> int | None:
    """The training child's pid as recorded at start (alive or not)."""
    trainer = read_trainer(run_dir)
    return trainer.pid if trainer else None


def _create_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def trainer_process(run_dir: Path) -> psutil.Process | None:
    """The process that is verifiably this run's trainer now, else ``None``.

    Verified by the pid and start time recorded at launch (a record without a start
    time verifies nothing); a process that trains another run folder (a copied run
    folder names its original's trainer) is never this run's.
    """
    import psutil

    trainer = read_trainer(run_dir)
    if trainer is None or not trainer.created:
        return None
    try:
        process = psutil.Process(trainer.pid)
        if abs(process.create_time() - trainer.created) > 1.0:
            return None
        if process.status() == psutil.STATUS_ZOMBIE or _trains_elsewhere(process, run_dir):
            return None
    except psutil.Error:
        return None
    return process


def _trains_elsewhere(process: psutil.Process, run_dir: Path) -> bool:
    """Whether ``process`` is a Stillroom trainer (``-m engine train DIR``) of another folder."""
    import psutil

    try:
        args = process.cmdline()
    except psutil.Error:
        return False
    for i in range(len(args) - 3):
        if args[i : i + 3] == ["-m", "engine", "train"]:
            return Path(args[i + 3]).resolve() != Path(run_dir).resolve()
    return False


def child_alive(run_dir: Path) -> bool:
    """Whether this run's training process is still running (zombies count as dead)."""
    return trainer_process(run_dir) is not None


def started_text(created: float) -> str:
    """When a process started, as a person reads it."""
    return datetime.fromtimestamp(created).strftime("%Y-%m-%d %H:%M:%S")
