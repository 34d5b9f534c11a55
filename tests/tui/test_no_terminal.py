"""`stillroom` without a terminal says where the headless commands are, instead of drawing
a full screen into a pipe and waiting for keys that never come."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest


def wizard(tmp_path: Path, **streams) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tui.cli"], cwd=tmp_path, text=True,
                          timeout=30, **streams)  # fmt: skip


@pytest.mark.parametrize("stdin", ["devnull", "pipe", "terminal"])
def test_no_terminal_exits_2_with_one_line_naming_the_headless_commands(tmp_path, stdin):
    """`stillroom < /dev/null`, `echo | stillroom`, and `stillroom | less` (stdout a pipe)."""
    main, secondary = pty.openpty()
    try:
        given = {"devnull": {"stdin": subprocess.DEVNULL}, "pipe": {"input": ""},
                 "terminal": {"stdin": secondary}}[stdin]  # fmt: skip
        result = wizard(tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **given)
    finally:
        os.close(main)
        os.close(secondary)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for command in ("stillroom --help", "stillroom demo --no-wizard", "stillroom train PLAN"):
        assert command in lines[0]
    assert not (tmp_path / "stillroom-plan.toml").exists()
