"""Child entry for the wizard's Chat step: ``python -m engine chat-serve RUN_DIR``.

Loads the run's student once, then answers JSON requests read one a line from
stdin with events (:mod:`engine.events`) on stdout. A request is
``{"messages": [...]}`` plus, optionally, ``"base": true`` (the adapter off),
``"max_new_tokens": N`` (N ≥ 1), ``"system": "..."`` (a system prompt before the
messages; null or empty: none) and ``"temperature": T`` (0 to 2; 0, the default,
is greedy). It writes ``started``, then ``ready`` once loaded, then for each
request a ``token`` per streamed piece and one ``answer``, or ``refused`` (with a
hint) for a bad request or a :class:`~engine.errors.UserError`. A student that
cannot load ends it with ``error``. It ends with ``finished`` when stdin closes,
so a parent that dies never leaves it behind once loaded. Library chatter goes
to stderr: stdout carries the protocol only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from engine import events as ev
from engine.errors import UserError
from engine.i18n import _

JOB = "chat-serve"


def serve(run_dir: Path, requests: IO[str], emit: Callable[[ev.Event], None]) -> int:
    """Load the student of ``run_dir``, then answer each request line until ``requests`` ends."""
    from engine.chat import keep_to_the_runs_card, load_student
    from engine.chat_options import ChatOptions
    from engine.run_dir import RunDir

    run = RunDir(run_dir)
    emit(ev.Started(job=JOB, pid=os.getpid(), model=_model(run)))
    try:
        keep_to_the_runs_card(run_dir)
        student = load_student(run_dir)
    except UserError as error:
        emit(ev.Error(kind="student", message=error.message, hint=error.hint))
        return 1
    emit(ev.Ready(job=JOB, run=str(run_dir), backend=student.backend))
    for line in requests:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            messages = [{"role": m["role"], "content": m["content"]} for m in request["messages"]]
            options = {"base": bool(request.get("base", False)),
                       **ChatOptions.from_request(request).generation()}  # fmt: skip
        except (ValueError, KeyError, TypeError) as error:
            emit(
                ev.Refused(
                    message=_("bad request: {error}").format(error=error),
                    hint=_("One JSON object a line."),
                )
            )
            continue
        try:
            generation = student.stream(messages, **options)
            for piece in generation:
                emit(ev.Token(text=piece))
        except UserError as error:
            emit(ev.Refused(message=error.message, hint=error.hint))
            continue
        answer = generation.answer
        assert answer is not None
        emit(ev.Answer(text=answer.text, tokens=answer.tokens, cut=answer.cut,
                       ended_cleanly=answer.ended_cleanly, ttft_s=answer.ttft_s,
                       tokens_per_s=answer.tokens_per_s))  # fmt: skip
    emit(ev.Finished())
    return 0


def _model(run) -> str:
    """The student model the run names, for ``started`` ("" when its plan cannot be read)."""
    try:
        return run.plan().student.model
    except UserError:
        return ""
