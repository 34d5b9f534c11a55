"""The wizard's draft: the plan being built, autosaved with the step the user was on.

It is an ordinary plan file (``stillroom train stillroom-plan.toml`` replays it);
the step lives in a comment at the top, so the file stays a valid plan.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from engine.fileio import atomic_write_text
from engine.plan import Plan, load_plan

DEFAULT_PATH = Path("stillroom-plan.toml")
_STEP_MARK = "# wizard-step: "


def read_draft(path: Path) -> tuple[Plan, str | None]:
    """The saved plan and step; a missing file is a fresh default plan and no step.

    A plan that no longer validates raises :class:`~engine.plan.PlanError`.
    """
    if not path.exists():
        return Plan(), None
    plan = load_plan(path)  # first: it says why a file cannot be used
    step = None
    with path.open(encoding="utf-8-sig") as handle:
        for line in handle:
            if not line.startswith("#"):
                break
            if line.startswith(_STEP_MARK):
                step = line[len(_STEP_MARK) :].strip()
    return plan, step


def set_aside(path: Path) -> Path:
    """Rename the user's unloadable plan to a dated backup next to it, so nothing overwrites it.

    ``stillroom-plan.toml`` becomes ``stillroom-plan.20261130-015500.bak.toml``
    (a number added if that exists): still a TOML file, to fix and open again.
    """
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{path.stem}.{stamp}.bak{path.suffix}")
    n = 1
    while backup.exists():
        n += 1
        backup = path.with_name(f"{path.stem}.{stamp}-{n}.bak{path.suffix}")
    path.rename(backup)
    return backup


def write_draft(path: Path, plan: Plan, step: str) -> None:
    """Atomically save only the keys that differ from the defaults, plus the step."""
    header = (
        "# Stillroom plan, autosaved by the wizard. Every key not written here takes its default.\n"
        f"# Replay headless: stillroom train {path}\n"
        f"{_STEP_MARK}{step}\n"
    )
    atomic_write_text(path, header + plan.to_toml(only_changes=True))
