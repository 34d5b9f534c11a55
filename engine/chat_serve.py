"""Child entry for the wizard's Chat step: ``python -m engine chat-serve RUN_DIR``.

Loads the run's student once, then answers JSON requests read one a line from
stdin with JSON lines on stdout. A request is ``{"messages": [...]}`` plus,
optionally, ``"base": true`` (the adapter off), ``"max_new_tokens": N`` (N ≥ 1),
``"system": "..."`` (a system prompt before the messages; null or empty: none)
and ``"temperature": T`` (0 to 2; 0, the default, is greedy). It writes
``ready`` once loaded, then for each request a ``token`` per streamed piece and
one ``answer``; an ``error`` (with a hint) for a bad request or a
:class:`~engine.errors.UserError`. It exits when stdin closes, so a parent that
dies never leaves it behind once loaded. Library chatter goes to stderr: stdout
carries the protocol only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from engine.errors import UserError
from engine.i18n import _


def serve(run_dir: Path, requests: IO[str], out: IO[str]) -> int:
    """Load the student of ``run_dir``, then answer each request line until ``requests`` ends."""

    def send(kind: str, **fields: Any) -> None:
        out.write(json.dumps({"type": kind, **fields}) + "\n")
        out.flush()

    from engine.chat import load_student
    from engine.chat_options import ChatOptions

    try:
        student = load_student(run_dir)
    except UserError as error:
        send("error", message=error.message, hint=error.hint)
        return 1
    send("ready", run=run_dir.name, backend=student.backend)
    for line in requests:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            messages = [{"role": m["role"], "content": m["content"]} for m in request["messages"]]
            options = {"base": bool(request.get("base", False)),
                       **ChatOptions.from_request(request).generation()}  # fmt: skip
        except (ValueError, KeyError, TypeError) as error:
            send(
                "error",
                message=_("bad request: {error}").format(error=error),
                hint=_("One JSON object a line."),
            )
            continue
        try:
            generation = student.stream(messages, **options)
            for piece in generation:
                send("token", text=piece)
        except UserError as error:
            send("error", message=error.message, hint=error.hint)
            continue
        answer = generation.answer
        assert answer is not None
        send("answer", text=answer.text, cut=answer.cut, ended_cleanly=answer.ended_cleanly,
             ttft_s=answer.ttft_s, tokens_per_s=answer.tokens_per_s)  # fmt: skip
    return 0
