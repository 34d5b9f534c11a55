"""RunDir: one run folder's paths, and what its files say about it.

Everything that asks "where is this run's plan, log, adapter?" or "is this run
trained?" asks a :class:`RunDir`, so the answer is written down once. State that
needs the trainer process (running, crashed) is :func:`engine.runs.status`'s.

Stdlib only (the plan loads on demand): the CLI and the TUI import this.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.run_events import EVENTS_FILE

if TYPE_CHECKING:
    from engine.plan import Plan

PLAN_FILE = "plan.toml"
ADAPTER_DIR = "adapter"
LOG_FILE = "train.log"
PID_FILE = "pid"
CANCEL_FILE = "cancel"
EVAL_DIR = "eval"
CHAT_LOG = "chat.log"


@dataclass(frozen=True)
class RunDir:
    """A run folder: ``plan.toml``, ``events.jsonl``, ``train.log``, ``adapter/``, ``eval/``…"""

    path: Path

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def plan_file(self) -> Path:
        return self.path / PLAN_FILE

    @property
    def events_file(self) -> Path:
        return self.path / EVENTS_FILE

    @property
    def log_file(self) -> Path:
        return self.path / LOG_FILE

    @property
    def adapter_dir(self) -> Path:
        return self.path / ADAPTER_DIR

    @property
    def eval_dir(self) -> Path:
        return self.path / EVAL_DIR

    def job_log(self, job: str) -> Path:
        """Where a child job's library output goes (``eval.log``, ``chat.log``, …)."""
        return self.path / f"{job}.log"

    def job_events(self, job: str) -> Path:
        """Where a detached child job's events go (``eval.events.jsonl``, …)."""
        return self.path / f"{job}.events.jsonl"

    @property
    def is_run(self) -> bool:
        """Whether the folder is a run at all: it holds the plan it trains."""
        return self.plan_file.is_file()

    @property
    def adapter(self) -> Path | None:
        """The adapter folder once training (or a cancel) saved it whole, else ``None``.

        The one answer to "is this run trained?": the adapter is written aside and
        swapped in complete, so its config file means the folder is whole.
        """
        return self.adapter_dir if (self.adapter_dir / "adapter_config.json").is_file() else None

    @property
    def trained(self) -> bool:
        return self.adapter is not None

    def plan(self) -> Plan:
        """The plan as trained (``UserError`` when it cannot be read)."""
        from engine.plan import load_plan

        return load_plan(self.plan_file)
