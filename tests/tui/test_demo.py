"""The demo's wizard: it opens at the Data step on the bundled textbook, with its demo teacher."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.demo.folder import PLAN, fill_folder, knowledge
from engine.demo.teacher import KEY, KEY_ENV, DemoTeacher
from tui.commands.demo import write_demo_plan

from .conftest import SIZE
from .scenes import until

pytestmark = pytest.mark.anyio


async def test_demo_opens_at_data_showing_the_textbook_and_its_problems_then_the_teacher_adds_to_it(
    make_app, project: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(KEY_ENV, KEY)
    fill_folder(project)
    with DemoTeacher(knowledge()) as server:
        write_demo_plan(project / PLAN, tiny_model_dir, "random", server.base_url)
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.current_mode == "data" and app.screen.rendered)
            data = app.screen
            assert data.report.format == "sharegpt"
            kinds = {problem.kind for problem in data.report.problems}
            assert {"empty_response", "missing_response", "duplicate", "too_long"} <= kinds
            rows_before = data.report.rows

            await pilot.press("ctrl+p")
            await until(pilot, lambda: app.current_mode == "teacher")
            teacher = app.screen
            await pilot.press("ctrl+r")
            await until(pilot, lambda: teacher.result is not None and not teacher.running)
            counts = teacher.result.counts
            assert counts["answered"] == 10 and counts["cost_usd"] == 0

            await pilot.press("ctrl+n")  # back on Data, the grown file is read again by itself
            await until(
                pilot,
                lambda: (
                    app.current_mode == "data"
                    and app.screen.rendered
                    and app.screen.report.rows == rows_before + 10
                ),
            )


@pytest.mark.slow
async def test_the_demo_wizard_walks_from_data_to_a_student_that_knows_the_town(
    make_app, project: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    """Data, Student, Train (a real detached run of the tiny student), then Chat: the student
    answers an invented fact the base model cannot know."""
    from engine.demo.folder import TOUR_QUESTIONS
    from tui.screens.chat import ChatScreen

    from .test_chat import ask

    monkeypatch.setenv(KEY_ENV, KEY)
    fill_folder(project)
    question = TOUR_QUESTIONS[0]
    with DemoTeacher(knowledge()) as server:
        write_demo_plan(project / PLAN, tiny_model_dir, "random", server.base_url)
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.current_mode == "data" and app.screen.rendered)
            await pilot.press("ctrl+n")
            await until(pilot, lambda: app.current_mode == "student")
            await pilot.press("ctrl+n")
            await until(pilot, lambda: app.current_mode == "train")
            train = app.screen
            await until(pilot, lambda: train.state == "ready")
            await pilot.press("ctrl+r")
            await until(pilot, lambda: train.ending is not None, timeout_s=600)
            assert train.state == "finished"
            await pilot.press("ctrl+n")
            await until(pilot, lambda: isinstance(app.screen, ChatScreen))
            chat = app.screen
            await until(pilot, lambda: chat.state == "ready", timeout_s=120)
            await ask(pilot, chat, question)
            assert knowledge()[question] in chat.history[-1]["content"]
