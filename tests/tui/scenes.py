"""Each wizard screen brought to a typical, deterministic state: for snapshots and screenshots.

A scene runs inside ``app.run_test`` (as a snapshot's ``run_before``) in a
project folder made by :func:`prepare`, so every path on screen is short and
the same on every machine.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Input

from engine import runs

WRONG_COLUMNS = [
    {"body": "The capital of France is Paris.", "title": "What is the capital of France?"},
    {"body": "Seven is a prime number below ten.", "title": "Name a prime number below ten."},
    {"body": "On a clear day the sky is blue.", "title": "What colour is the sky?"},
    {"body": "On a clear day the sky is blue.", "title": "What colour is the sky?"},
    {"body": "", "title": "Say nothing at all."},
]
PROMPTS = [f"Explain topic number {i} briefly" for i in range(8)]
TINY = "./tiny-model"


def cache_default_student(cache: Path) -> Path:
    """A hub cache at ``cache`` holding the default student's config, as after a download:
    the Student step then shows the model as cached rather than missing offline."""
    repo = cache / "models--unsloth--Qwen2.5-1.5B-Instruct"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / "config.json").write_text('{"model_type": "qwen2"}')
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text("0" * 40)
    return cache


def prepare(project: Path, tiny_model_dir: Path | None = None) -> None:
    """Write the data files the scenes read (and link the tiny student) into ``project``."""
    rows = "".join(json.dumps(row) + "\n" for row in WRONG_COLUMNS)
    (project / "answers.jsonl").write_text(rows)
    (project / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    if tiny_model_dir is not None and not (project / "tiny-model").exists():
        (project / "tiny-model").symlink_to(tiny_model_dir)


async def until(pilot: Pilot, condition: Callable[[], object], timeout_s: float = 30.0) -> None:
    """Let the app run until ``condition()`` holds (worker results arrive as messages)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the app"
        await pilot.pause(0.05)


async def settle(pilot: Pilot) -> None:
    """Let every worker finish and its messages land (results start more workers); toasts go.

    A focused field's cursor blinks twice a second: stop it (hidden) so a capture
    does not depend on when it was taken.
    """
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
    pilot.app.clear_notifications()
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()


async def welcome(pilot: Pilot) -> None:
    await settle(pilot)


async def teacher(pilot: Pilot, base_url: str = "http://127.0.0.1:8000/v1") -> None:
    app = pilot.app
    await pilot.press("n")
    await pilot.pause()
    app.change("teacher", provider="local", base_url=base_url, model="teacher-1",
               api_key_env="", prompts="prompts.txt", concurrency=4)  # fmt: skip
    app.screen.show_plan()
    await settle(pilot)


async def data(pilot: Pilot) -> None:
    app = pilot.app
    await pilot.press("n")
    await pilot.pause()
    app.change("student", model=TINY, max_seq_length=72)  # two of three rows too long
    app.change("dataset", source="answers.jsonl", format="pair",
               mapping={"prompt": "title", "response": "body"})  # fmt: skip
    await pilot.press("ctrl+n")
    await settle(pilot)


async def student(pilot: Pilot) -> None:
    app = pilot.app
    await pilot.press("n")
    await pilot.pause()
    app.change("training", batch_size=64, grad_accum=1)
    app.switch_mode("student")
    await settle(pilot)


async def command(pilot: Pilot) -> None:
    await data(pilot)
    await pilot.press("ctrl+g")
    await settle(pilot)


async def train(pilot: Pilot) -> None:
    """A run 36 of 60 steps in on a shared H100, followed from the Train step."""
    from .replayer import make_run_dir, recorded_run

    app = pilot.app
    await pilot.press("n")
    await pilot.pause()
    run_dir = make_run_dir(Path("runs"), app.plan)
    write = runs.EventWriter(run_dir)
    for event in recorded_run(36):
        write(event)
    runs.write_pid(run_dir, os.getpid())  # this process stands in for the live trainer
    app.attach_run(run_dir)
    while not (
        getattr(app.screen, "last_step", None)
        and app.screen.last_step.step == 36
        and app.screen.query_one("GpuPanel").sample
    ):
        await pilot.pause(0.05)
    app.clear_notifications()
    await pilot.pause()


SCENES: dict[str, Callable[[Pilot], Awaitable[None]]] = {
    "welcome": welcome,
    "teacher": teacher,
    "data": data,
    "student": student,
    "command": command,
    "train": train,
}
