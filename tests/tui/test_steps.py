"""The three working steps, each driven the way a user would, against real engine code."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from textual.widgets import Select

from engine.events import GpuSample
from engine.plan import load_plan
from tests.teacher_server import TeacherServer, answer_for
from tui.replay import inspect_command
from tui.screens.command import CommandScreen
from tui.widgets.fit_gauge import FitGauge
from tui.widgets.histogram import Histogram

from .conftest import SIZE, T4
from .scenes import until

pytestmark = pytest.mark.anyio
KEY_VAR = "STILLROOM_TUI_TEST_KEY"


async def test_teacher_generates_in_a_child_that_pauses_and_resumes_asking_each_prompt_once(
    make_app, monkeypatch
):
    """Generation runs as `python -m engine generate`, the key only in its environment: pausing
    stops it once the answers in flight are saved, and resuming asks only what is left."""
    prompts = [f"Explain topic number {i} briefly" for i in range(8)]
    Path("prompts.txt").write_text("\n".join(prompts) + "\n")
    with TeacherServer(latency_s=0.15) as server:
        monkeypatch.setenv(KEY_VAR, server.api_key)
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("n")
            await pilot.pause()
            screen = app.screen
            app.change("teacher", provider="local", base_url=server.base_url, model="teacher-1",
                       api_key_env=KEY_VAR, prompts="prompts.txt", concurrency=1,
                       price_input_per_mtok=2.0, price_output_per_mtok=8.0)  # fmt: skip
            screen.show_plan()
            await pilot.press("ctrl+t")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert "serves teacher-1" in str(screen.query_one("#test-result").render())

            await pilot.press("ctrl+r")
            await until(pilot, lambda: screen.progress is not None and screen.progress.done >= 1)
            assert " done · " in str(screen.query_one("#progress").render())
            child = screen.child.process
            assert screen.started.pid == child.pid != os.getpid()  # a child answers, not the UI
            argv = Path(f"/proc/{child.pid}/cmdline").read_bytes().split(b"\0")
            assert b"generate" in argv and not any(server.api_key.encode() in a for a in argv)
            await pilot.press("ctrl+s")
            await until(pilot, lambda: not screen.running)
            assert str(screen.query_one("#progress").render()).startswith("Paused")
            paused = screen.result.counts["done"]
            assert 0 < paused < 8 and child.poll() == 0

            await pilot.press("ctrl+r")
            await until(pilot, lambda: not screen.running)
            assert screen.result.counts["already"] == paused
            said = str(screen.query_one("#progress").render())
            assert "Done: 8/8" in said
            spent = screen.result.counts  # what the resumed run sent stays on screen
            tokens = int(spent["prompt_tokens"] + spent["completion_tokens"])
            assert tokens and f"This run: {tokens:,} tokens, cost ${spent['cost_usd']:.4f}." in said
    records = [json.loads(line) for line in Path("teacher.jsonl").read_text().splitlines()]
    answers = sorted(r["messages"][-1]["content"] for r in records)
    assert answers == sorted(answer_for(p) for p in prompts)
    assert sorted(server.answered()) == sorted(prompts)  # nothing asked twice
    assert load_plan("stillroom-plan.toml").dataset.source == "teacher.jsonl"
    for written in ("teacher.generate.toml", "teacher.generate.log"):
        assert server.api_key not in Path(written).read_text()


async def test_teacher_says_what_to_do_when_the_key_is_missing(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.pause()
        help_text = str(app.screen.query_one("#knob-teacher-api_key_env .help").render())
        assert "export DEEPSEEK_API_KEY" in help_text
        await pilot.press("ctrl+t")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "DEEPSEEK_API_KEY is not set" in str(app.screen.query_one("#test-result").render())


async def read_data(app, pilot, source: str, model: str, max_seq_length: int = 2048):
    await pilot.press("n")
    await pilot.pause()
    app.change("student", model=model, max_seq_length=max_seq_length)
    app.change("dataset", source=source)
    await pilot.press("ctrl+n")
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()
    return app.screen


async def test_data_mapping_fixed_in_the_mapper_then_problems_and_a_rendered_sample(
    make_app, wrong_columns, tiny_student
):
    app = make_app()
    async with app.run_test(size=(100, 60)) as pilot:
        screen = await read_data(app, pilot, wrong_columns.name, tiny_student)
        assert screen.report.mapping == {"prompt": "body", "response": "title"}  # guessed wrong
        assert "guessed from column order" in screen.report.evidence

        screen.query_one("#role-prompt", Select).value = "title"
        await pilot.pause()
        screen.query_one("#role-response", Select).value = "body"
        await pilot.pause()
        await until(pilot, lambda: screen.rendered)
        report = screen.report
        assert report.mapping == {"prompt": "title", "response": "body"}
        assert load_plan("stillroom-plan.toml").dataset.mapping == report.mapping
        problems = str(screen.query_one("#problems").render())
        assert "empty answer" in problems and "repeat an earlier row" in problems
        trained = [text for text, is_trained in report.preview if is_trained]
        assert trained[0].startswith("The capital of France is Paris.")
        assert screen.query_one(Histogram).bins
        assert screen.problems() == []


async def test_data_long_rows_come_with_one_key_fixes(make_app, wrong_columns, tiny_student):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await read_data(app, pilot, wrong_columns.name, tiny_student, max_seq_length=16)
        assert "ctrl+l" in str(screen.query_one("#problems").render())
        await pilot.press("ctrl+l")
        await until(pilot, lambda: screen.rendered)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.plan.student.max_seq_length >= screen.report.tokens["max"]
        assert not any(p.kind == "too_long" for p in screen.report.problems)


async def test_show_as_command_replays_headless(make_app, wrong_columns, tiny_student):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await read_data(app, pilot, wrong_columns.name, tiny_student)
        app.change("dataset", format="pair", mapping={"prompt": "title", "response": "body"})
        screen.action_inspect()
        await until(pilot, lambda: screen.rendered)
        on_screen = screen.report
        await pilot.press("ctrl+g")
        await pilot.pause()
        assert isinstance(app.screen, CommandScreen)
        shown = app.screen.commands
    assert " ".join(inspect_command(app.plan)[2:]) in shown.replace("'", "")

    def stillroom(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tui.cli", *argv], capture_output=True,
                              text=True, timeout=120)  # fmt: skip

    assert stillroom("plan", "stillroom-plan.toml").returncode == 0
    result = stillroom(*inspect_command(app.plan)[1:], "--json")
    assert result.returncode == 0, result.stderr
    headless = json.loads(result.stdout)
    assert headless["format"] == on_screen.format and headless["mapping"] == on_screen.mapping
    assert headless["usable_rows"] == on_screen.usable_rows


async def test_student_gauge_follows_batch_size_and_applies_the_fix(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.pause()
        app.switch_mode("student")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        gauge = screen.query_one(FitGauge)
        assert gauge.verdict == "fits"

        await pilot.click("#knob-training-batch_size Input")
        await pilot.press("end", "ctrl+u", "6", "4")
        await until(pilot, lambda: gauge.verdict == "will_not_fit")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.current_mode == "student"  # gated: it would not fit
        assert "ctrl+y" in str(gauge.render())

        await pilot.press("ctrl+y")
        await until(pilot, lambda: gauge.verdict == "fits")
        plan = load_plan("stillroom-plan.toml")
        assert plan.training.batch_size < 64
        assert plan.training.batch_size * plan.training.grad_accum >= 64 * 4


def two_t4s(own_pids: set[int]) -> list[GpuSample]:
    """A GPU sampler for a box with two idle 15 GB T4s."""
    return [
        GpuSample(index=i, name="Tesla T4", mem_used_mb=0.0, mem_total_mb=T4[0]) for i in (0, 1)
    ]


async def test_student_gauge_is_per_gpu_when_the_plan_trains_on_several(project):
    """training.gpus = "auto" on two cards: each takes half of a step's 16 rows in its
    micro-batch, so the step fits two T4s where one T4 alone could not hold it."""
    from tui.app import StillroomApp

    app = StillroomApp(Path("stillroom-plan.toml"), gpu_probe=lambda: T4, gpu_sampler=two_t4s)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        app.switch_mode("student")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        gauge = app.screen.query_one(FitGauge)
        await pilot.click("#knob-training-grad_accum Input")
        await pilot.press("end", "ctrl+u", "1")
        await pilot.click("#knob-training-batch_size Input")
        await pilot.press("end", "ctrl+u", "1", "6")  # 16 rows a step: 8 on each card
        await until(pilot, lambda: gauge.estimate and gauge.estimate.peak_mb > 8 * 1024)
        assert gauge.verdict == "fits"
        assert "GB per GPU, 2 GPUs" in str(gauge.render())

        card = app.screen.query_one("#card", Select)
        card.value = 15360.0  # planning for a box with one T4
        await until(pilot, lambda: gauge.verdict == "will_not_fit")
        assert "per GPU" not in str(gauge.render())
        card.value = 0.0  # this machine's two again

        await pilot.click("#knob-training-batch_size Input")
        await pilot.press("end", "ctrl+u", "3", "2")  # 16 on each card: too many
        await until(pilot, lambda: "32 ->" in str(gauge.render()))
        assert "batch_size 32 -> 8 (grad_accum 1 -> 4)" in str(gauge.render())  # the plan's keys
        await pilot.press("ctrl+y")
        await until(pilot, lambda: gauge.verdict == "fits")
        training = load_plan("stillroom-plan.toml").training
        assert (training.batch_size, training.grad_accum) == (8, 4)


async def test_student_compares_with_a_chosen_card_without_a_gpu(project):
    from tui.app import StillroomApp

    app = StillroomApp(Path("stillroom-plan.toml"), gpu_probe=lambda: None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        app.switch_mode("student")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        gauge = app.screen.query_one(FitGauge)
        assert gauge.verdict == "unknown"
        app.screen.query_one("#card", Select).value = 15360.0
        await until(pilot, lambda: gauge.verdict == "fits")
    await asyncio.sleep(0)


async def test_student_says_how_the_run_will_checkpoint_on_the_card_compared_with(project):
    from textual.widgets import Static

    from tui.app import StillroomApp

    app = StillroomApp(Path("stillroom-plan.toml"), gpu_probe=lambda: None)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.pause()
        app.change("training", batch_size=8, grad_accum=1)
        app.change("student", backend="unsloth")  # the GPU path, also on this machine
        app.switch_mode("student")
        await pilot.pause()
        await app.workers.wait_for_complete()
        line = app.screen.query_one("#checkpointing", Static)
        assert not line.display  # no card to size against
        app.screen.query_one("#card", Select).value = 15360.0
        await until(pilot, lambda: line.display and "offloaded" in str(line.render()))
        app.screen.query_one("#card", Select).value = 81559.0
        await until(pilot, lambda: "checkpointing off" in str(line.render()))
    await asyncio.sleep(0)


async def test_data_token_preview_of_a_modelscope_student_asks_modelscope(
    make_app, wrong_columns, monkeypatch
):
    """With the student on ModelScope, the Data step's token preview loads the tokenizer there
    (here the package is missing, so it names the pip command), not from the Hugging Face cache."""
    import sys

    monkeypatch.setitem(sys.modules, "modelscope", None)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.pause()
        app.change("student", source="modelscope")  # the default id, in this project's HF cache
        app.change("dataset", source=wrong_columns.name, format="pair",
                   mapping={"prompt": "title", "response": "body"})  # fmt: skip
        await pilot.press("ctrl+n")
        sample = app.screen.query_one("#sample")
        await until(pilot, lambda: "pip install modelscope" in str(sample.render()))
