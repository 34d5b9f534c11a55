"""Where an export may go, and putting it there without deleting anything Stillroom did not write.

Every export folder holds a marker file (``stillroom-export.json``). A target is
refused when it is the root, the working folder or a parent of it, an existing
file, a link, a run folder or anything inside the runs folder (except the run's
own ``export/FORMAT``), or a non-empty folder that is not an earlier Stillroom
export of the same format; ``force`` lets an export of another format be
replaced, never a folder without the marker. The CLI and the wizard's export
dialog both ask :func:`check_export_target`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from engine.errors import UserError
from engine.fileio import atomic_write_text
from engine.i18n import _
from engine.runs import EVENTS_FILE, PLAN_FILE

MARKER = "stillroom-export.json"
_RUN_PARTS = (EVENTS_FILE, "adapter", "checkpoints", "summary.json")


def default_export_dir(run_dir: str | Path, format: str) -> Path:
    """``RUN/export/FORMAT``: where an export goes when no folder is named."""
    return Path(run_dir) / "export" / format


def check_export_target(
    out: str | Path | None, format: str, run_dir: str | Path, *, force: bool = False
) -> Path:
    """The resolved folder an export of ``run_dir`` may go to, or a UserError saying why not."""
    run_dir = Path(run_dir).resolve()
    default = default_export_dir(run_dir, format)
    given = Path(out).expanduser() if out else default
    named = str(out) if out else str(default)
    if given.is_symlink():
        _refuse(named, _("it is a link"), _("Name a real folder, not a link to one."))
    target = given.resolve()
    cwd = Path.cwd().resolve()
    if target == Path(target.anchor):
        _refuse(named, _("it is the root folder"))
    if target == cwd:
        _refuse(named, _("it is the working folder"))
    if target in cwd.parents:
        _refuse(named, _("it holds the working folder"))
    if target != default:
        runs_folder = run_dir.parent
        if target == runs_folder:
            _refuse(named, _("it is the runs folder"))
        if runs_folder in target.parents:
            _refuse(
                named,
                _("it is inside the runs folder {runs_folder}").format(runs_folder=runs_folder),
            )
        run = next((f for f in (target, *target.parents) if _is_run(f)), None)
        if run is not None:
            _refuse(named, _("it is inside the run folder {run}").format(run=run))
    if target.exists() and not target.is_dir():
        _refuse(named, _("it is an existing file"))
    if target.is_dir() and any(target.iterdir()):
        earlier = read_marker(target)
        if earlier is None:
            _refuse(
                named,
                _("it holds files Stillroom did not write"),
                _(
                    "Choose a new folder (e.g. {folder}-2). Stillroom replaces only a folder "
                    "holding its own {MARKER}, even with --force (an export made before Stillroom "
                    "marked its exports has none: delete it yourself to reuse the folder)."
                ).format(folder=named.rstrip("/"), MARKER=MARKER),
            )
        if earlier != format and not force:
            _refuse(
                named,
                _("it holds a Stillroom {earlier} export, not {format}").format(
                    earlier=earlier, format=format
                ),
                _("Choose a new folder, or add --force to replace that export."),
            )
    return target


def _is_run(folder: Path) -> bool:
    """A run folder: its plan plus anything training writes (a plan.toml alone is a user's)."""
    return (folder / PLAN_FILE).is_file() and any((folder / p).exists() for p in _RUN_PARTS)


def _refuse(named: str, why: str, hint: str = "") -> None:
    raise UserError(
        _("will not export to {named}: {why}").format(named=named, why=why),
        hint=hint or _("Name a new or empty folder with --out, e.g. --out exports/my-student."),
    )


def read_marker(folder: Path) -> str | None:
    """The format of the Stillroom export in ``folder``, or ``None`` if it holds none."""
    try:
        return str(json.loads((folder / MARKER).read_text(encoding="utf-8"))["format"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def new_partial(target: Path) -> Path:
    """A fresh, empty folder next to ``target`` to build the export in (so removing it is safe)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))


def write_marker(folder: Path, format: str, run_dir: Path) -> None:
    written = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record = {"format": format, "run": Path(run_dir).name, "written_at": written}
    atomic_write_text(folder / MARKER, json.dumps(record, indent=2) + "\n")


def place_export(partial: Path, target: Path) -> None:
    """Move the finished export into ``target``; an earlier export there is removed only after.

    ``target`` was checked by :func:`check_export_target` (again just before this
    call): it is missing, empty, or a Stillroom export.
    """
    if not target.is_dir():
        partial.rename(target)
        return
    if not any(target.iterdir()):
        target.rmdir()
        partial.rename(target)
        return
    attic = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    previous = attic / target.name
    target.rename(previous)
    try:
        partial.rename(target)
    except BaseException:
        previous.rename(target)
        attic.rmdir()
        raise
    shutil.rmtree(attic)
