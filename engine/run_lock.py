"""One trainer per run folder: an exclusive OS file lock held for the trainer's lifetime.

:func:`engine.runs.start` takes the lock before it touches the folder and hands
the locked descriptor to the training child, which keeps it until it exits;
the kernel drops the lock when the child ends, however it ends (a kill too),
so there is no stale lock to clean up. A second ``train --resume`` finds the
lock taken and is told which process holds it.

``fcntl.flock`` rather than the ``filelock`` package: the lock must pass from
the launcher to the child without a moment unheld, and only a raw descriptor
inherited through ``Popen(pass_fds=...)`` does that.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "trainer.lock"


def try_lock(run_dir: Path) -> int | None:
    """A descriptor holding ``run_dir``'s lock, or ``None`` when another process holds it."""
    fd = os.open(Path(run_dir) / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def keep(fd: int) -> None:
    """In the child: check that the inherited ``fd`` holds the lock; keep it from grandchildren."""
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the same open file as the launcher's: ours
    os.set_inheritable(fd, False)
