"""The Chat step against the trained facts run: streaming, base comparison, clearing, leaving."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from tests.engine.training import FACTS
from tui.screens.chat import ChatScreen
from tui.widgets.chat_log import ChatLog

from .conftest import SIZE
from .scenes import until

pytestmark = pytest.mark.anyio


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
        screen.max_new_tokens = 30
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

        screen.max_new_tokens = 2
        await ask(pilot, screen, FACTS[1][0])
        assert "✂ cut by the budget of 2 tokens" in transcript(screen)

        child = screen.child
        assert child is not None
        await pilot.press("ctrl+p")
        await until(pilot, lambda: app.current_mode == "train")
        assert child.wait(timeout=10) is not None  # leaving the step ends the child
        assert screen.child is None
