"""What the commands promise about plan files and the folder they run in: a plan that cannot be
read, one nested thousands deep, or a folder that cannot be written is one clear message with
the fix, never a traceback. Root ignores permission bits, so the commands run without the
capabilities that let it (tests/promises/permissions.py says how)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.engine.training import stillroom
from tests.promises.permissions import obey_permissions
from tests.promises.refusal import refused_cleanly

DEEP = 100_000  # far past any parser's recursion limit


@pytest.mark.parametrize("command", ["plan", "train"])
def test_a_plan_you_cannot_read_is_a_clear_message(tmp_path, command):
    """A plan the user cannot read (chmod 000) is a message naming the file and the fix."""
    plan = tmp_path / "plan.toml"
    plan.write_text('[output]\nname = "t"\n')
    plan.chmod(0)
    result = stillroom(command, "plan.toml", preexec_fn=obey_permissions, cwd=tmp_path)
    assert refused_cleanly(result, "plan.toml", "permission denied", "chmod u+r"), result.stderr


@pytest.mark.parametrize("command", ["plan", "train"])
def test_a_plan_nested_thousands_deep_is_a_clear_message(tmp_path, command):
    """A plan nested thousands deep is a message, not a RecursionError."""
    (tmp_path / "plan.toml").write_text("x = " + "[" * DEEP + "]" * DEEP + "\n")
    result = stillroom(command, "plan.toml", cwd=tmp_path)
    assert refused_cleanly(result, "plan.toml", "nested deeper than"), result.stderr


def test_train_in_a_read_only_folder_says_where_to_run_instead(tmp_path):
    """`stillroom train` in a read-only working folder says it cannot write the run folder and
    how to fix it (another folder, or runs_dir)."""
    (tmp_path / "plan.toml").write_text('[output]\nname = "t"\n')
    tmp_path.chmod(0o555)
    try:
        result = stillroom("train", "plan.toml", preexec_fn=obey_permissions, cwd=tmp_path)
    finally:
        tmp_path.chmod(0o755)
    assert refused_cleanly(result, "cannot write runs/t-", "permission denied", "runs_dir")
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["plan.toml"]


@pytest.mark.parametrize(
    ("setting", "message", "fix"),
    [
        ("[training]\ngpus = [0, 5]", "no CUDA GPU is visible", 'training.gpus = "auto"'),
        ('[student]\nbackend = "unsloth"', "lacks a CUDA GPU", "student.backend = 'auto'"),
    ],
)
def test_a_plan_the_trainer_refuses_before_it_starts_ends_with_its_message(
    tmp_path, setting, message, fix
):
    """A plan the trainer refuses before it has chosen its backend (GPUs named on a CPU box,
    Unsloth without CUDA) ends the run with that message and its fix, not as a crash."""
    (tmp_path / "plan.toml").write_text(setting + '\n[output]\nname = "t"\n')
    result = stillroom(
        "train", "plan.toml", cwd=tmp_path, env=dict(os.environ, CUDA_VISIBLE_DEVICES="")
    )
    said = result.stdout + result.stderr
    assert result.returncode == 1 and "error (plan)" in said, said
    assert message in said and fix in said and "crashed" not in said, said
