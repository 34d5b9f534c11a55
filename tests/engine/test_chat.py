"""Chat with the trained facts run: learned answers, streaming, history, cut marks, compare."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from engine.chat import ask_teacher, compare, load_student
from engine.plan import TeacherPlan
from tests.engine.training import FACTS, stillroom
from tests.teacher_server import TeacherServer, answer_for

KEY_VAR = "STILLROOM_TEST_TEACHER_KEY"


@pytest.fixture(scope="module")
def student(facts_run):
    return load_student(facts_run)


def test_chat_prompt_gives_the_learned_answer_and_base_does_not(facts_run):
    question, answer = FACTS[3]
    learned = stillroom("chat", str(facts_run), "--prompt", question, "--max-new-tokens", "30")
    assert learned.returncode == 0, learned.stderr
    assert learned.stdout.strip() == answer
    base = stillroom(
        "chat", str(facts_run), "--prompt", question, "--base", "--max-new-tokens", "30"
    )
    assert base.returncode == 0, base.stderr
    assert answer not in base.stdout
    assert "cut by the budget of 30 tokens" in base.stderr


def test_answers_stream_before_they_end(student):
    generation = student.stream([{"role": "user", "content": FACTS[0][0]}], max_new_tokens=30)
    pieces = iter(generation)
    first = next(pieces)
    assert first and generation.answer is None  # a piece arrived, the answer is not done
    rest = "".join(pieces)
    answer = generation.answer
    assert first + rest == answer.text == FACTS[0][1]
    assert answer.ended_cleanly and not answer.cut
    assert answer.ttft_s is not None and answer.tokens > 1


def test_answers_asked_together_are_the_answers_asked_one_at_a_time(student, monkeypatch):
    """Eval, retention and replay ask in left-padded batches: prompts of different lengths,
    the student's and the base's answers, a clean end and a cut, each as it is alone."""
    monkeypatch.setattr("engine.chat.ANSWER_BATCH", 3)  # two batches, the second short
    asked = [[{"role": "user", "content": question}] for question, _ in FACTS[:4]]
    asked.append([{"role": "user", "content": "Tell me everything about the history of tea."}])
    for base in (False, True):
        together = student.answer_all(asked, base=base, max_new_tokens=12)
        alone = [student.answer(messages, base=base, max_new_tokens=12) for messages in asked]
        fields = [(a.text, a.tokens, a.cut, a.ended_cleanly) for a in together]
        assert fields == [(a.text, a.tokens, a.cut, a.ended_cleanly) for a in alone]
    learned = student.answer_all(asked[:4], max_new_tokens=30)
    assert [a.text for a in learned] == [answer for _, answer in FACTS[:4]]
    assert all(a.ended_cleanly for a in learned) and together[-1].cut


def test_a_batch_that_runs_out_of_gpu_memory_is_asked_again_in_halves(student, monkeypatch):
    """A card with little room left answers in smaller batches, not with a crash."""
    import torch

    generate, sizes = student.model.generate, []

    def short_of_memory(*args, **kwargs):
        sizes.append(len(kwargs["input_ids"]))
        if sizes[-1] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. (injected by a test)")
        return generate(*args, **kwargs)

    asked = [[{"role": "user", "content": question}] for question, _ in FACTS]
    monkeypatch.setattr(student.model, "generate", short_of_memory)
    done: list[int] = []
    answers = student.answer_all(asked, max_new_tokens=30, progress=done.append)
    assert [a.text for a in answers] == [answer for _, answer in FACTS]
    assert sizes == [6, 3, 2, 2, 2]  # all six, then halves until a batch fits
    assert done == [2, 4, 6]


def test_a_multi_turn_history_renders_through_the_chat_template(student):
    history = [
        {"role": "user", "content": FACTS[0][0]},
        {"role": "assistant", "content": FACTS[0][1]},
        {"role": "user", "content": FACTS[4][0]},
    ]
    prompt = student.render(history, system="Be brief.")
    assert prompt == student.tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, *history],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert prompt.count("<|im_start|>user") == 2 and prompt.endswith("<|im_start|>assistant\n")
    assert student.answer(history, max_new_tokens=30).tokens > 0  # the model takes it


def test_an_answer_that_hits_the_budget_is_marked_cut(student):
    answer = student.answer([{"role": "user", "content": FACTS[1][0]}], base=True, max_new_tokens=5)
    assert answer.cut and not answer.ended_cleanly and answer.tokens == 5


def test_compare_answers_with_student_base_and_teacher(student, monkeypatch):
    with TeacherServer() as server:
        monkeypatch.setenv(KEY_VAR, server.api_key)
        teacher = TeacherPlan(
            provider="custom", base_url=server.base_url, model="teacher-1", api_key_env=KEY_VAR
        )
        monkeypatch.setattr(student.plan, "teacher", teacher)
        question, answer = FACTS[2]
        result = compare(student, [{"role": "user", "content": question}], max_new_tokens=20)
    assert result.student.text == answer
    assert result.base.text != answer
    assert result.teacher.text == answer_for(question)


def test_a_teacher_without_its_key_is_skipped_with_a_note(monkeypatch):
    monkeypatch.delenv(KEY_VAR, raising=False)
    reply = ask_teacher(
        TeacherPlan(
            provider="custom", base_url="http://127.0.0.1:9/v1", model="m", api_key_env=KEY_VAR
        ),
        [{"role": "user", "content": "hi"}],
    )
    assert not reply.text and KEY_VAR in reply.note


def test_chat_without_an_adapter_says_so(tmp_path):
    (tmp_path / "plan.toml").write_text("")
    result = stillroom("chat", str(tmp_path), "--prompt", "hi")
    assert result.returncode == 2 and "has no adapter yet" in result.stderr


def test_chat_without_a_terminal_is_a_line_chat_with_history(facts_run):
    """Piped input (a script, or --lines): one answer per line, /reset forgets, /quit leaves.
    (The tiny student learned single turns only: its second-turn answer is any text.)"""
    first, then = FACTS[0], FACTS[5]
    lines = f"{first[0]}\n{then[0]}\n/reset\n/nonsense\n{first[0]}\n/quit\n"
    result = stillroom("chat", str(facts_run), "--max-new-tokens", "30", input=lines)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{first[1]}\n")
    assert result.stdout.endswith(f"\n(history cleared)\n{first[1]}\n")
    assert "unknown command /nonsense: /reset or /quit" in result.stderr


def test_chat_in_a_terminal_opens_the_wizard_on_that_run(facts_run, tmp_path):
    """`stillroom chat RUN` at a terminal is the Chat step talking to RUN: a typed question
    gets its learned answer, ctrl+q leaves, and no draft plan is written just by chatting."""
    question, learned = FACTS[1]
    main, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    app = subprocess.Popen(
        [sys.executable, "-m", "tui.cli", "chat", str(facts_run), "--max-new-tokens", "30"],
        stdin=secondary, stdout=secondary, stderr=secondary, cwd=tmp_path,
        start_new_session=True, env={**os.environ, "TERM": "xterm-256color"},
    )  # fmt: skip
    os.close(secondary)
    try:
        read_until(main, f"{facts_run.name}: talking to the student")
        os.write(main, question.encode() + b"\r")
        assert learned in read_until(main, "ended cleanly")
        os.write(main, b"\x11")  # ctrl+q
        assert app.wait(timeout=30) == 0
    finally:
        if app.poll() is None:
            app.kill()
        os.close(main)
    assert not (tmp_path / "stillroom-plan.toml").exists()


def read_until(terminal: int, wanted: str, timeout_s: float = 120) -> str:
    """The text the app painted on ``terminal`` (escapes removed) until ``wanted`` shows."""
    screen, deadline = b"", time.monotonic() + timeout_s
    while wanted not in visible(screen):
        assert time.monotonic() < deadline, visible(screen)[-2000:]
        ready, _, _ = select.select([terminal], [], [], 1.0)
        if ready:
            screen += os.read(terminal, 65536)
    return visible(screen)


def visible(screen: bytes) -> str:
    """The painted text without its escape sequences (each cell move becomes nothing)."""
    return re.sub(
        r"\x1b\[[0-9;?<>=]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]", "", screen.decode(errors="replace")
    )
