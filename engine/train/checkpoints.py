"""Checkpoints that count only once they are whole.

The HF Trainer writes ``checkpoint-N`` in place and, when asked to resume,
trusts the highest-numbered folder. A kill during a save would leave a torn
folder there and poison every later resume. So a checkpoint counts only once
:func:`mark_complete` has written its marker (after the Trainer finished the
folder and rotated old ones); resume takes the newest marked folder and
deletes the unmarked ones first, so nothing downstream ever sees them. A save
that fails (a folder made read-only, a full disk) ends the run with
:class:`SaveFailed`'s event, naming the folder and the OS's reason; the Trainer
rotates old checkpoints only after a save succeeds, so the last whole one stays.
"""

from __future__ import annotations

import errno
import json
import re
import shutil
from pathlib import Path

from engine import events as ev
from engine.fileio import atomic_write_text
from engine.i18n import N_, _

MARKER = "stillroom-complete"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def checkpoints_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def _numbered(root: Path) -> list[tuple[int, Path]]:
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _NAME.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def mark_complete(folder: Path, step: int, optimizer: str | None = None) -> None:
    """Declare ``folder`` whole; written last, atomically, with the optimizer its states are of."""
    atomic_write_text(folder / MARKER, json.dumps({"step": step, "optimizer": optimizer}) + "\n")


def saved_optimizer(folder: Path) -> str | None:
    """The optimizer a checkpoint's states were written by (None: not recorded, an older one)."""
    try:
        record = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record.get("optimizer") if isinstance(record, dict) else None


# Optimizers whose saved states load into each other: the same state layout.
_STATE_LAYOUT = {
    "adamw_torch": "adamw",
    "adamw_torch_fused": "adamw",
    "adamw_8bit": "adamw_8bit",
    "paged_adamw_8bit": "adamw_8bit",
}


def resume_optimizer(saved: str | None, chosen: str, cuda: bool) -> tuple[str, bool, str]:
    """``(optimizer, keep_states, log line)`` for resuming a checkpoint whose states ``saved``
    wrote where this launch chose ``chosen`` (another card class, or an edited plan).

    Another optimizer cannot read those states (a crash at the first step, or a silent
    restart), so the checkpoint's own optimizer trains on where it runs here; only where
    it cannot (8-bit states on a machine without CUDA) are the states dropped, and said so.
    """
    if saved is None or _STATE_LAYOUT.get(saved, saved) == _STATE_LAYOUT.get(chosen, chosen):
        return chosen, True, ""
    if cuda or "8bit" not in saved:
        return (
            saved,
            True,
            _(
                "optimizer: the checkpoint's states are {saved}'s, so training goes on with "
                "{saved} in place of {chosen} (what this launch would choose), keeping them"
            ).format(saved=saved, chosen=chosen),
        )
    return (
        chosen,
        False,
        _(
            "optimizer: the checkpoint's {saved} states need CUDA; training goes on with "
            "{chosen} from fresh optimizer states (the adapter's weights, the step and the "
            "learning-rate schedule carry on; the first steps rebuild the optimizer's running "
            "averages)"
        ).format(saved=saved, chosen=chosen),
    )


def load_schedule_only(trainer) -> None:
    """Make ``trainer`` resume its learning-rate schedule but not its optimizer's states."""
    import torch

    def load(checkpoint: str | None) -> None:
        if checkpoint is None:
            return
        schedule = torch.load(Path(checkpoint) / "scheduler.pt", weights_only=True)
        trainer.lr_scheduler.load_state_dict(schedule)
        for group, rate in zip(
            trainer.optimizer.param_groups, trainer.lr_scheduler.get_last_lr(), strict=True
        ):
            group["lr"] = rate

    # transformers loads both states in this one method (Trainer._inner_training_loop).
    trainer._load_optimizer_and_scheduler = load


def is_complete(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def complete_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Whole checkpoints, oldest first."""
    return [(n, p) for n, p in _numbered(checkpoints_dir(run_dir)) if is_complete(p)]


def prepare_resume(run_dir: Path) -> tuple[int, Path] | None:
    """Delete torn checkpoints and return the newest whole one (step, folder), if any."""
    for _step, folder in _numbered(checkpoints_dir(run_dir)):
        if not is_complete(folder):
            shutil.rmtree(folder, ignore_errors=True)
    done = complete_checkpoints(run_dir)
    return done[-1] if done else None


_REASONS = {
    errno.EACCES: N_("permission denied: this user may not write there"),
    errno.EPERM: N_("permission denied: the folder may not be written to"),
    errno.EROFS: N_("the disk holding it is read-only"),
    errno.ENOSPC: N_("the disk is full"),
    errno.EDQUOT: N_("the disk quota is used up"),
    errno.ENOTDIR: N_("part of the path is a file, not a folder"),
    errno.EEXIST: N_("a file is in the way where the checkpoint's folder goes"),
}


class SaveFailed(Exception):
    """Writing the checkpoint of ``step`` failed (``cause`` says why); older ones are untouched."""

    def __init__(self, run_dir: Path, step: int, cause: BaseException):
        super().__init__(f"checkpoint {step}: {cause}")
        self.run_dir, self.step, self.cause = run_dir, step, cause

    def event(self) -> ev.Error:
        """The run's ending: which folder, what the OS said, what to do, where resume starts."""
        folder = checkpoints_dir(self.run_dir)
        os_error = _os_error(self.cause)
        path = folder / f"checkpoint-{self.step}"
        reason = f"{type(self.cause).__name__}: {self.cause}"
        if os_error is not None:
            path = Path(os_error.filename) if os_error.filename else path
            known = _REASONS.get(os_error.errno or 0)
            reason = _(known) if known else os_error.strerror or reason
        kept = complete_checkpoints(self.run_dir)
        since = (
            _("the checkpoint of step {step}, which is whole and untouched").format(
                step=kept[-1][0]
            )
            if kept
            else _("the first step (no checkpoint had been saved yet)")
        )
        return ev.Error(
            kind="checkpoint",
            message=_(
                "could not save the checkpoint of step {step} in {folder}: {reason} ({path})"
            ).format(step=self.step, folder=folder, reason=reason, path=path),
            hint=_(
                "Make {folder} a folder this user can write to (`ls -ld {path}` shows its owner "
                "and permissions; also check for a read-only or full disk, or a file in the way), "
                "then `stillroom train --resume {run_dir}` continues from {since}."
            ).format(folder=folder, path=path, run_dir=self.run_dir, since=since),
            log_tail=reason,
        )


def _os_error(error: BaseException | None) -> OSError | None:
    """The operating system's error behind ``error``, following its causes."""
    seen = 0
    while error is not None and seen < 20:
        if isinstance(error, OSError):
            return error
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None
