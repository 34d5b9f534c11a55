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


def write_draft(path: Path, plan: Plan, step: str, *, fresh: bool = False) -> None:
    """Atomically save the plan and the step.

    Over a plan file already there, only the values that changed are rewritten, so a plan the
    user wrote keeps its comments, its layout and the keys they wrote at their defaults.
    ``fresh`` (a new plan), or a file that is not TOML, is written anew: only the keys that
    differ from the defaults.
    """
    kept = None if fresh else _updated(path, plan)
    if kept is None:
        header = (
            "# Stillroom plan, autosaved by the wizard. Every key not written here takes its "
            "default.\n"
            f"# Replay headless: stillroom train {path}\n"
            f"{_STEP_MARK}{step}\n"
        )
        atomic_write_text(path, header + plan.to_toml(only_changes=True))
        return
    lines = kept.splitlines(keepends=True)
    leading = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    marks = [i for i in range(leading) if lines[i].startswith(_STEP_MARK)]
    if marks:
        lines[marks[0]] = f"{_STEP_MARK}{step}\n"
    else:
        lines.insert(0, f"{_STEP_MARK}{step}\n")
    atomic_write_text(path, "".join(lines))


def _updated(path: Path, plan: Plan) -> str | None:
    """The TOML at ``path`` with ``plan``'s values written into it: a changed key in place, a
    key now unset (``None``) removed, a new one added to its table; ``None`` when ``path``
    holds no TOML to keep."""
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        document = tomlkit.parse(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, TOMLKitError):
        return None
    changed = plan.to_dict(only_changes=True)
    for section, values in plan.to_dict().items():
        table = document.get(section)
        if table is None:
            if changed.get(section):
                document[section] = changed[section]
            continue
        for key in [k for k in table if k not in values]:
            del table[key]
        for key, value in values.items():
            if key in table:
                kept = table[key]  # a tomlkit item, but plain for a boolean
                if (kept.unwrap() if hasattr(kept, "unwrap") else kept) != value:
                    table[key] = value
            elif key in changed.get(section, {}):
                table[key] = value
    return tomlkit.dumps(document)
