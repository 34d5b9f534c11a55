"""The ``stillroom`` command lines that do headless what a wizard step shows.

Pure functions of the plan, so "show as command" and its tests agree, and a
wizard session can be replayed in a script.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from engine.data.load import looks_like_hub_id
from engine.plan import Plan


def inspect_command(plan: Plan) -> list[str]:
    """``stillroom inspect`` with the data step's source, format, mapping and student."""
    data, student = plan.dataset, plan.student
    argv = ["stillroom", "inspect", data.source]
    if looks_like_hub_id(data.source):
        argv += ["--split", data.split]
    if data.format != "auto":
        argv += ["--format", data.format]
    if data.mapping:
        argv += ["--map", ",".join(f"{k}={v}" for k, v in data.mapping.items())]
    argv += ["--model", student.model, "--max-seq-length", str(student.max_seq_length)]
    if data.overflow != "drop":
        argv += ["--overflow", data.overflow]
    return argv


def step_commands(plan: Plan, plan_path: Path, step: str) -> list[list[str]]:
    """The commands for ``step``, first the one that checks the plan file itself."""
    path = str(plan_path)
    commands = [["stillroom", "plan", path]]
    if step == "teacher":
        commands += [
            ["stillroom", "generate", "--plan", path, "--dry-run"],
            ["stillroom", "generate", "--plan", path],
        ]
    elif step == "data":
        commands.append(inspect_command(plan))
    elif step in ("student", "train"):
        commands += [["stillroom", "doctor", path], ["stillroom", "train", path]]
    elif step == "chat":
        commands.append(["stillroom", "runs"])
    return commands


def as_shell(commands: list[list[str]]) -> str:
    """Commands quoted for a POSIX shell, one a line."""
    return "\n".join(shlex.join(argv) for argv in commands)
