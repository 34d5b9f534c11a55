"""The `stillroom` command as a user runs it: a real subprocess."""

from __future__ import annotations

import subprocess
import sys


def stillroom(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_help_and_version():
    result = stillroom("--help")
    assert result.returncode == 0 and "plan" in result.stdout
    result = stillroom("--version")
    assert result.returncode == 0 and result.stdout.startswith("stillroom ")


def test_default_plan_is_a_valid_plan(tmp_path):
    result = stillroom("plan", "--defaults")
    assert result.returncode == 0
    path = tmp_path / "plan.toml"
    path.write_text(result.stdout)
    checked = stillroom("plan", str(path))
    assert checked.returncode == 0 and checked.stdout == result.stdout


def test_bad_plan_exits_2_with_the_key_and_no_traceback(tmp_path):
    path = tmp_path / "plan.toml"
    path.write_text("[training]\nbatch_size = -1\n")
    result = stillroom("plan", str(path))
    assert result.returncode == 2
    assert "training.batch_size" in result.stderr and "hint:" in result.stderr
    assert "Traceback" not in result.stderr
