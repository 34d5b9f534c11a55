"""The Chat step against the trained facts run: streaming, base and teacher compare, options."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from engine.chat_options import ChatOptions
from tests.engine.training import FACTS
from tests.teacher_server import TeacherServer, answer_for
from tui.screens.chat import ChatScreen, OptionsScreen
from tui.widgets.chat_log import ChatLog

from .conftest import SIZE
from .scenes import until

pytestmark = pytest.mark.anyio
KEY_VAR = "STILLROOM_TUI_CHAT_TEACHER_KEY"


def text_of(screen: ChatScreen, selector: str) -> str:
    return str(screen.query_one(selector).render())


def transcript(screen: ChatScreen) -> str:
    return "\n".join(str(line.render()) for line in screen.query_one(ChatLog).children)


async def open_chat(pilot) -> ChatScreen:
    """From the welcome screen through Train's Next to the Chat step."""
    await pilot.press("n")
    await pilot.pause()
    pilot.app.switch_mode("train")
    await pilot.pause()
    await pilot.press("ctrl+n")
    await until(pilot, lambda: isinstance(pilot.app.screen, ChatScreen))
    return pilot.app.screen


async def ask(pilot, screen: ChatScreen, question: str) -> None:
    """Type ``question``, send it, and wait for the whole answer."""
    turns = len(screen.history)
    screen.query_one("#prompt", Input).value = question
    await pilot.press("enter")
    await until(pilot, lambda: screen.state == "ready" and len(screen.history) == turns + 2, 60)


async def chat_with_facts_run(pilot, facts_run, **teacher) -> ChatScreen:
    """The Chat step talking to the facts run (answers capped at 30 tokens), ``teacher`` in the plan."""
    await pilot.press("n")
    await pilot.pause()
    assert pilot.app.change("output", runs_dir=str(facts_run.parent), name="t") is None
    if teacher:
        assert (
            pilot.app.change("teacher", model="teacher-1", api_key_env=KEY_VAR, **teacher) is None
        )
    screen = await open_chat(pilot)
    screen.options = ChatOptions(max_new_tokens=30)
    await until(pilot, lambda: screen.state == "ready", timeout_s=120)
    return screen


async def test_without_a_trained_run_it_says_how_to_get_one(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(pilot)
        await until(pilot, lambda: screen.state == "no-run")
        assert app.step == "chat"
        assert "No trained run of 'qwen-distill' in runs/ yet" in text_of(screen, "#chat-state")
        assert screen.child is None


async def test_the_student_streams_its_learned_answer_and_the_base_model_differs(
    make_app, facts_run
):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.pause()
        assert app.change("output", runs_dir=str(facts_run.parent), name="t") is None
        screen = await open_chat(pilot)
        screen.options = ChatOptions(max_new_tokens=30)
        await until(pilot, lambda: screen.state == "ready", timeout_s=120)
        assert f"{facts_run.name}: talking to the student" in text_of(screen, "#chat-state")
        log = screen.query_one(ChatLog)
        pieces: list[str] = []
        add_piece = log.add_piece
        log.add_piece = lambda text: (pieces.append(text), add_piece(text))  # type: ignore[method-assign]

        question, learned = FACTS[0]
        await ask(pilot, screen, question)
        assert len(pieces) > 1 and "".join(pieces) == learned
        assert screen.history == [
            {"role": "user", "content": question},
            {"role": "assistant", "content": learned},
        ]
        assert f"student › {learned}" in transcript(screen)
        assert "✓ ended cleanly" in transcript(screen)

        await pilot.press("ctrl+b")
        assert "the BASE model (adapter off)" in text_of(screen, "#chat-state")
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert screen.history == [] and transcript(screen) == ""
        await ask(pilot, screen, question)
        base_answer = screen.history[-1]["content"]
        assert base_answer != learned
        assert "base › " in transcript(screen)

        screen.options = ChatOptions(max_new_tokens=2)
        await ask(pilot, screen, FACTS[1][0])
        assert "✂ cut by the budget of 2 tokens" in transcript(screen)

        child = screen.child
        assert child is not None
        await pilot.press("ctrl+p")
        await until(pilot, lambda: app.current_mode == "train")
        assert child.process.wait(timeout=10) is not None  # leaving the step ends the child
        assert screen.child is None


async def test_compare_shows_student_base_and_teacher_and_goes_on_from_the_student(
    make_app, facts_run, monkeypatch
):
    question, learned = FACTS[2]
    with TeacherServer() as server:
        monkeypatch.setenv(KEY_VAR, server.api_key)
        app = make_app()
        async with app.run_test(size=SIZE) as pilot:
            screen = await chat_with_facts_run(
                pilot, facts_run, provider="custom", base_url=server.base_url
            )
            await pilot.press("ctrl+t")
            state = text_of(screen, "#chat-state")
            assert "COMPARE: student, base, teacher teacher-1" in state
            await ask(pilot, screen, question)
            shown = [str(line.render()) for line in screen.query_one(ChatLog).children]
            you, student, student_meta, base, base_meta, teacher, teacher_meta = shown
            assert you == f"you › {question}" and student == f"student › {learned}"
            assert student_meta.startswith("✓ ended cleanly · ") and "tok/s" in student_meta
            assert base.startswith("base › ") and base != f"base › {learned}"
            assert base_meta.startswith(("✓ ended cleanly", "✂ cut by the budget of 30"))
            assert teacher == f"teacher › {answer_for(question)}"
            assert teacher_meta.startswith("✓ answered through the API · ")
            assert screen.history == [
                {"role": "user", "content": question},
                {"role": "assistant", "content": learned},
            ]

            await ask(pilot, screen, FACTS[3][0])
            sent = server.requests[-1]["body"]["messages"]
            assert {"role": "assistant", "content": learned} in sent  # the student's answer
            await pilot.press("ctrl+t")
            assert "talking to the student (adapter on)" in text_of(screen, "#chat-state")


async def test_compare_without_the_teachers_key_notes_it_and_still_answers(
    make_app, facts_run, monkeypatch
):
    monkeypatch.delenv(KEY_VAR, raising=False)
    question, learned = FACTS[1]
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await chat_with_facts_run(
            pilot, facts_run, provider="custom", base_url="http://127.0.0.1:9/v1"
        )
        await pilot.press("ctrl+t")
        await ask(pilot, screen, question)
        shown = transcript(screen)
        assert f"student › {learned}" in shown and "base › " in shown
        assert "teacher › (no answer)" in shown
        note = shown.splitlines()[-1]
        assert note.startswith("✗ teacher skipped: ") and KEY_VAR in note
        assert "Traceback" not in shown


async def test_options_change_the_budget_and_refuse_a_bad_one(make_app, facts_run):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await chat_with_facts_run(pilot, facts_run)

        async def set_budget(value: str) -> OptionsScreen:
            await pilot.press("ctrl+o")
            await until(pilot, lambda: isinstance(app.screen, OptionsScreen))
            dialog = app.screen
            dialog.query_one("#budget", Input).value = value
            await pilot.press("enter")
            await pilot.pause()
            return dialog

        dialog = await set_budget("lots")
        assert app.screen is dialog
        error = text_of(dialog, "#options-error")
        assert "answer budget must be a whole number from 1 to 32768" in error
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen)
        assert screen.options.max_new_tokens == 30
        assert "budget 30 tokens" in text_of(screen, "#chat-state")

        await set_budget("3")
        await until(pilot, lambda: app.screen is screen)
        assert "budget 3 tokens" in text_of(screen, "#chat-state")
        assert screen.state == "ready"  # the dialog left the student loaded
        await ask(pilot, screen, FACTS[0][0])
        assert "✂ cut by the budget of 3 tokens" in transcript(screen)


async def test_eval_and_export_open_on_the_run_being_talked_to(make_app, facts_run):
    """ctrl+e / ctrl+x from the Chat step: the dialogs name the run the student came from."""
    from tui.screens.results import EvalScreen, ExportScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.pause()
        assert app.change("output", runs_dir=str(facts_run.parent), name="t") is None
        screen = await open_chat(pilot)
        await pilot.press("ctrl+e")
        await until(pilot, lambda: isinstance(app.screen, EvalScreen))
        assert app.screen.run_dir == facts_run
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen)
        await pilot.press("ctrl+x")
        await until(pilot, lambda: isinstance(app.screen, ExportScreen))
        assert app.screen.run_dir == facts_run


async def test_eval_without_a_trained_run_says_to_train_first(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(pilot)
        await until(pilot, lambda: screen.state == "no-run")
        await pilot.press("ctrl+e")
        await pilot.pause()
        assert app.screen is screen
        assert any("Train a run first" in n.message for n in app._notifications)


async def test_a_run_named_on_the_command_line_is_talked_to_and_the_draft_kept(make_app, facts_run):
    """`stillroom chat RUN` beside a draft of another plan: the Chat step talks to RUN with
    the options given, and the draft (its name, its step) is the user's, untouched."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("n")
        await pilot.pause()
        assert app.change("output", name="my-draft") is None
    draft = Path("stillroom-plan.toml").read_text()

    app = make_app(chat_run=facts_run, chat_options=ChatOptions(max_new_tokens=30))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, ChatScreen))
        screen = app.screen
        await until(pilot, lambda: screen.state == "ready", timeout_s=120)
        assert (
            f"{facts_run.name}: talking to the student (adapter on) · budget 30 tokens"
            in text_of(screen, "#chat-state")
        )
        question, learned = FACTS[4]
        await ask(pilot, screen, question)
        assert screen.history[-1]["content"] == learned
        assert app.plan.output.name == "my-draft"
    assert Path("stillroom-plan.toml").read_text() == draft


async def test_a_chat_child_that_cannot_load_or_dies_says_why_and_how_to_retry(
    make_app, facts_run, tmp_path
):
    """The child's own error comes with its hint; a child killed mid-session is said to have
    stopped, with its exit status, and the step does not wait for it forever."""
    untrained = tmp_path / "runs" / "t-untrained"
    untrained.mkdir(parents=True)
    (untrained / "plan.toml").write_text((facts_run / "plan.toml").read_text())
    app = make_app(chat_run=untrained)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, ChatScreen))
        screen = app.screen
        await until(pilot, lambda: screen.state == "failed", timeout_s=120)
        said = transcript(screen)
        assert "✗ t-untrained has no adapter yet" in said and "→ It appears when" in said
        assert "(exit 1)" in text_of(screen, "#chat-state")

    app = make_app(chat_run=facts_run)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, ChatScreen))
        screen = app.screen
        await until(pilot, lambda: screen.state == "ready", timeout_s=120)
        assert screen.child is not None
        screen.child.process.kill()
        await until(pilot, lambda: screen.state == "failed", timeout_s=30)
        assert screen.child is None and "(exit -9)" in text_of(screen, "#chat-state")
        assert "Leave and reopen the step to retry" in text_of(screen, "#chat-state")
