"""The Student step checks the student model before Next, not 50 s into training."""

from __future__ import annotations

import pytest

from tui.widgets.knob import Knob

from .conftest import SIZE
from .scenes import TINY, prepare, until

pytestmark = pytest.mark.anyio


async def open_student(app, pilot, model: str):
    await pilot.press("n")
    await pilot.pause()
    app.change("student", model=model)
    app.switch_mode("student")
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()
    return app.screen


async def test_a_misspelt_student_model_is_caught_on_next(make_app):
    """You should see the typo named under the model field, and Next stays on the step."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_student(app, pilot, "tiny-studnet")
        knob = screen.query_one("#knob-student-model", Knob)
        await until(pilot, lambda: knob.has_class("-invalid"))
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.current_mode == "student"
        shown = [str(n.message) for n in app._notifications]
        assert any("Student model 'tiny-studnet'" in text for text in shown), shown
        assert any("local model folder" in text for text in shown), shown


async def test_a_local_student_folder_passes_and_says_so(make_app, project, tiny_model_dir):
    """You should see the folder confirmed, and Next goes on to Train."""
    prepare(project, tiny_model_dir)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_student(app, pilot, TINY)
        knob = screen.query_one("#knob-student-model", Knob)
        await until(pilot, lambda: "local folder" in str(knob.query_one(".help").render()))
        await pilot.press("ctrl+n")
        await until(pilot, lambda: app.current_mode == "train")


async def test_a_modelscope_student_without_the_package_names_the_pip_command(
    make_app, monkeypatch
):
    """You should see, under the model field, that ModelScope needs `pip install modelscope`
    (the Hugging Face hub is never asked for a ModelScope student), and Next stays."""
    import sys

    monkeypatch.setitem(sys.modules, "modelscope", None)  # not installed, whatever this box has
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.pause()
        app.change("student", source="modelscope", model="unsloth/Qwen2.5-1.5B-Instruct")
        app.switch_mode("student")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        knob = app.screen.query_one("#knob-student-model", Knob)
        help_line = knob.query_one(".help")
        await until(pilot, lambda: "pip install modelscope" in str(help_line.render()))
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.current_mode == "student"
        shown = [str(n.message) for n in app._notifications]
        assert any("pip install modelscope" in text for text in shown), shown


async def test_choosing_modelscope_on_the_student_step_rechecks_the_model_there(
    make_app, monkeypatch
):
    """You should be able to pick ModelScope as the model hub on the Student step; the plan
    records it and the model is checked there at once (here: the package is missing)."""
    import sys

    from textual.widgets import Select

    monkeypatch.setitem(sys.modules, "modelscope", None)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_student(app, pilot, "unsloth/Qwen2.5-1.5B-Instruct")
        hub = screen.query_one("#knob-student-source", Knob)
        assert hub.editor.value == "huggingface"
        hub.query_one(Select).value = "modelscope"
        await pilot.pause()
        assert app.plan.student.source == "modelscope"
        help_line = screen.query_one("#knob-student-model", Knob).query_one(".help")
        await until(pilot, lambda: "pip install modelscope" in str(help_line.render()))
