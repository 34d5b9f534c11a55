"""Small file helpers that never leave a half-written file behind.

Every file Stillroom writes for the user either appears whole or not at all
(atomic replace), or grows one complete line at a time (append-only JSONL).
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.i18n import N_, _

_WHY = {
    errno.EACCES: N_("permission denied"),
    errno.EPERM: N_("permission denied"),
    errno.EROFS: N_("the file system is read-only"),
    errno.ENOSPC: N_("the disk is full"),
    errno.EDQUOT: N_("the disk quota is used up"),
    errno.EISDIR: N_("a folder of that name is in the way"),
    errno.ENOTDIR: N_("a file is in the way where a folder should be"),
}


def cannot_write(path: str | os.PathLike[str], error: OSError, fix: str) -> UserError:
    """The UserError for a write the system refused: what, why in words, and ``fix``."""
    why = _WHY.get(error.errno or 0)
    why = _(why) if why else error.strerror or str(error)
    return UserError(_("cannot write {path}: {why}").format(path=path, why=why), hint=fix)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and an atomic rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _mode_for(target))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _mode_for(target: Path) -> int:
    """The file's own mode when replacing it, else what ``open`` would give under the umask.

    ``mkstemp`` creates 0600 files: an exported Modelfile or model card would
    otherwise be unreadable to other users of a shared box.
    """
    try:
        return target.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def append_jsonl(
    path: str | os.PathLike[str], record: dict[str, Any], *, fsync: bool = False
) -> None:
    """Append one JSON object as one line, written with a single ``write`` call.

    Opening in append mode and writing the whole line at once means a reader
    (or a process killed mid-write) sees complete lines only, except possibly a
    torn last line, which :func:`read_jsonl` skips.
    """
    line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        if fsync:
            os.fsync(handle.fileno())


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a JSONL file, skipping blank and torn lines."""
    try:
        handle = open(path, encoding="utf-8")
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                yield value
