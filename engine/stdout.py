"""Stdout carries answers and ``--json`` only; library chatter goes to stderr.

Unsloth prints a banner, an ASCII sloth and import warnings on stdout (print
and C code alike), and transformers and datasets add their own. A script that
reads ``stillroom chat --prompt`` or ``--json`` output must get only the answer.
Commands that write for scripts take their stream from :func:`answers_only`;
model loading anywhere runs under :func:`chatter_to_stderr`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO


def answers_only() -> IO[str]:
    """The real stdout, for answers; from now on fd 1 and ``sys.stdout`` point at stderr."""
    sys.stdout.flush()
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return answers


@contextmanager
def chatter_to_stderr() -> Iterator[None]:
    """While a library loads, whatever it prints (Python or C) lands on stderr."""
    sys.stdout.flush()
    saved_fd, saved_stream = os.dup(1), sys.stdout
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved_fd, 1)
        os.close(saved_fd)
        sys.stdout = saved_stream
