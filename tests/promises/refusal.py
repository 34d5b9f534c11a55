"""Checking what a refused ``stillroom`` command printed."""

from __future__ import annotations

import subprocess


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
