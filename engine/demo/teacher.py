"""The demo teacher: an OpenAI-compatible server on loopback that knows only the invented town.

Stillroom talks to it exactly as to a real provider (the ``openai`` client,
``/v1/models``, ``/v1/chat/completions`` streamed or not), so the demo's
``generate`` runs the real path; it answers from the bundled facts, costs
nothing, and lives only as long as the demo that started it. Stdlib only.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "stillroom-demo-teacher"
KEY_ENV = "STILLROOM_DEMO_TEACHER_KEY"
KEY = "demo-teacher-needs-no-key"  # set in the demo's own environment only
UNKNOWN = (
    "I am Stillroom's demo teacher: I know only the invented town of Marrowick, "
    "and nothing about that."
)


def normalise(question: str) -> str:
    """Case, spacing and punctuation do not change which question it is."""
    return " ".join(re.findall(r"[a-z0-9]+", question.lower()))


class DemoTeacher:
    """A threaded loopback server on an ephemeral port; a context manager."""

    def __init__(self, knowledge: dict[str, str]) -> None:
        self.knowledge = {normalise(q): a for q, a in knowledge.items()}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def answer(self, question: str) -> str:
        return self.knowledge.get(normalise(question), UNKNOWN)

    def __enter__(self) -> DemoTeacher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _usage(messages: list[dict[str, Any]], answer: str) -> dict[str, int]:
    prompt = sum(len(str(m.get("content", "")).split()) for m in messages)
    completion = len(answer.split())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _handler(teacher: DemoTeacher) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # the demo's screen is not a log
            pass

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, value: Any) -> None:
            self._send(status, json.dumps(value).encode())

        def _not_found(self, what: str) -> None:
            error = {"message": what, "type": "not_found", "code": "not_found"}
            self._json(404, {"error": error})

        def do_GET(self) -> None:
            if self.path.rstrip("/") != "/v1/models":
                return self._not_found(f"no route {self.path}")
            model = {"id": MODEL, "object": "model", "owned_by": "stillroom demo"}
            self._json(200, {"object": "list", "data": [model]})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                return self._json(400, {"error": {"message": "the body is not JSON"}})
            if self.path.rstrip("/") != "/v1/chat/completions":
                return self._not_found(f"no route {self.path}")
            if body.get("model") != MODEL:
                return self._not_found(f"The model `{body.get('model')}` does not exist; "
                                       f"the demo teacher is {MODEL}")  # fmt: skip
            messages = body.get("messages") or []
            user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
            answer = teacher.answer(str(user))
            base = {"id": "chatcmpl-demo", "created": int(time.time()), "model": MODEL}
            usage = _usage(messages, answer)
            if body.get("stream"):
                return self._stream(base, answer, usage, bool(body.get("stream_options")))
            message = {"role": "assistant", "content": answer}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            self._json(
                200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
            )

        def _stream(self, base: dict, answer: str, usage: dict, with_usage: bool) -> None:
            """Server-sent events: one chunk a few words, the finish, the usage, ``[DONE]``."""
            words = re.findall(r"\S+\s*", answer)
            deltas = [{"role": "assistant", "content": ""}]
            deltas += [{"content": "".join(words[i : i + 4])} for i in range(0, len(words), 4)]
            events = [
                {**base, "object": "chat.completion.chunk",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                for delta in deltas
            ]  # fmt: skip
            events.append({**base, "object": "chat.completion.chunk",
                           "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})  # fmt: skip
            if with_usage:
                events.append({**base, "object": "chat.completion.chunk", "choices": [],
                               "usage": usage})  # fmt: skip
            lines = [f"data: {json.dumps(event)}\n\n" for event in events] + ["data: [DONE]\n\n"]
            self._send(200, "".join(lines).encode(), "text/event-stream")

    return Handler
