"""Where an export may go, and putting it there without deleting anything Stillroom did not write.

Every export folder holds a marker file (``stillroom-export.json``). A target is
refused when it is the root, the working folder or a parent of it, an existing
file, a link, a run folder or anything inside the runs folder (except the run's
own ``export/FORMAT``), or a non-empty folder that is not an earlier Stillroom
export of the same format; ``force`` lets an export of another format be
replaced, never a folder without the marker. The CLI and the wizard's export
dialog both ask :func:`check_export_target`.

An export is built in a hidden ``.NAME.*.partial`` folder beside the target, with a
note beside it naming the process that builds it. An export killed outright leaves
both; the next export to the same target removes such a folder once its process is
gone (:func:`clear_stopped`), and nothing else.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from engine.errors import UserError
from engine.fileio import atomic_write_text
from engine.i18n import _
from engine.runs import EVENTS_FILE, PLAN_FILE

MARKER = "stillroom-export.json"
OWNER_SUFFIX = ".owner.json"  # beside a partial folder: the process building it
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
    """A fresh, empty folder next to ``target`` to build the export in (so removing it is safe),
    with a note beside it naming this process."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    )
    owner = {"pid": os.getpid(), "started": _process_started(os.getpid())}
    atomic_write_text(_owner_note(partial), json.dumps(owner) + "\n")
    return partial


def drop_partial(partial: Path) -> None:
    """Remove a partial export and its note."""
    shutil.rmtree(partial, ignore_errors=True)
    _owner_note(partial).unlink(missing_ok=True)


def clear_stopped(target: Path) -> list[tuple[Path, int]]:
    """Remove the partial folders that exports to ``target`` left when killed: those whose note
    names a process that is gone. Each removed folder, with the bytes it held."""
    cleared = []
    pattern = f".{glob.escape(target.name)}.*.partial{OWNER_SUFFIX}"
    for note in sorted(target.parent.glob(pattern)):
        partial = note.with_name(note.name.removesuffix(OWNER_SUFFIX))
        try:
            owner = json.loads(note.read_text(encoding="utf-8"))
            alive = _process_started(int(owner["pid"])) == owner["started"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a note this code wrote: leave it and its folder alone
        if alive or partial.is_symlink():
            continue
        if not partial.exists():  # killed just after its export was moved into place
            note.unlink(missing_ok=True)
            continue
        size = sum(f.stat().st_size for f in partial.rglob("*") if f.is_file())
        drop_partial(partial)
        cleared.append((partial, size))
    return cleared


def _owner_note(partial: Path) -> Path:
    return partial.with_name(partial.name + OWNER_SUFFIX)


def _process_started(pid: int) -> float | None:
    """When process ``pid`` started (None when there is none): a reused pid starts later."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def write_marker(folder: Path, format: str, run_dir: Path) -> None:
    written = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record = {"format": format, "run": Path(run_dir).name, "written_at": written}
    atomic_write_text(folder / MARKER, json.dumps(record, indent=2) + "\n")


def place_export(partial: Path, target: Path) -> None:
    """Move the finished export into ``target``; an earlier export there is removed only after.

    ``target`` was checked by :func:`check_export_target` (again just before this
    call): it is missing, empty, or a Stillroom export.
    """
    _move_into(partial, target)
    _owner_note(partial).unlink(missing_ok=True)


def _move_into(partial: Path, target: Path) -> None:
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
