"""Running the real ``stillroom`` command from a folder of the test's choosing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def stillroom_in(
    cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 240, **options
) -> subprocess.CompletedProcess[str]:
    """``stillroom ARGS`` run with ``cwd`` as the working folder (this checkout's code first).

    ``env`` entries are added to (or, set to "", removed from) this process's environment;
    ``options`` go to :func:`subprocess.run` (``user=`` to run as another user).
    """
    merged = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    for name, value in (env or {}).items():
        if value:
            merged[name] = value
        else:
            merged.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        cwd=cwd,
        env=merged,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **options,
    )


def refused_cleanly(result: subprocess.CompletedProcess[str], *words: str) -> bool:
    """Exit 2 with a ``stillroom:`` message holding ``words`` and a hint, and no traceback."""
    err = result.stderr
    return (
        result.returncode == 2
        and err.startswith("stillroom: ")
        and "  hint: " in err
        and "Traceback" not in err
        and all(word in err for word in words)
    )
