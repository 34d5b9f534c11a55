"""Run a ``stillroom`` subcommand in a child process and follow what it prints.

The TUI never imports the ML stack, so evaluation and export run as the real
CLI in a child. The child writes to a log file only, never to a pipe that a
closed screen could leave undrained, so it finishes even when nobody watches;
:func:`follow` tails that file line by line.
"""

from __future__ import annotations

import codecs
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
POLL_S = 0.1
_LINE_END = re.compile(r"\r\n|\r|\n")  # \r too: progress such as "answered 3/6" rewrites a line


@dataclass(frozen=True)
class Failure:
    """Why a child failed, in words: the CLI's message and its hint."""

    message: str
    hint: str


def child_env() -> dict[str, str]:
    """This environment, unbuffered, with the source tree importable (no install needed)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    return env


def start_cli(args: Sequence[str], log_path: Path) -> subprocess.Popen[bytes]:
    """``stillroom ARGS`` in its own session, so it outlives the screen; output to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "tui.cli", *args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=child_env(), start_new_session=True,
        )  # fmt: skip


def follow(
    child: subprocess.Popen[bytes],
    log_path: Path,
    on_line: Callable[[str], None],
    stop: Callable[[], bool],
) -> int | None:
    """Pass each non-blank line the child writes to ``on_line`` until it exits.

    Returns its exit code, or ``None`` once ``stop()`` says nobody is watching any more.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pending = ""
    with open(log_path, "rb") as log:
        while True:
            exited = child.poll() is not None  # checked before reading, so no output is missed
            *lines, pending = _LINE_END.split(pending + decoder.decode(log.read()))
            for line in lines:
                if line.strip():
                    on_line(line)
            if exited:
                break
            if stop():
                return None
            time.sleep(POLL_S)
    if pending.strip():
        on_line(pending)
    return child.returncode


def failure(lines: Sequence[str], log_path: Path) -> Failure:
    """What went wrong as the CLI said it (``stillroom: …`` and ``hint: …``), else the
    traceback's last line and where the whole output is."""
    said = [line.removeprefix("stillroom: ") for line in lines if line.startswith("stillroom: ")]
    hints = [line.strip().removeprefix("hint: ") for line in lines if line.startswith("  hint: ")]
    if said:
        return Failure(said[-1], hints[-1] if hints else "")
    last = next((line.strip() for line in reversed(lines) if line.strip()), "it printed nothing")
    return Failure(last, f"The whole output is in {log_path}.")
