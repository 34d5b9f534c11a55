"""A fake teacher: a real chat-completions server on loopback, with scripted faults.

Stdlib only, so tests, the benchmark and later TUI tests can all start one::

    with TeacherServer(latency_s=0.05) as server:
        server.fault("status", status=429, retry_after=0.1, match="prompt 3")
        ...  # point the client at server.base_url with key server.api_key

It speaks ``POST /v1/chat/completions`` (JSON, or SSE when ``stream`` is set,
with ``data: [DONE]`` and the usage chunk of ``stream_options.include_usage``)
and ``GET /v1/models``. Answers are a deterministic function of the prompt
(:func:`answer_for`), so tests can check content. Model names pick behaviours:
one containing ``reasoner`` returns ``reasoning_content``, one containing
``think`` an inline ``<think>`` block. ``requests`` logs every chat request.

Run as a script (``python tests/teacher_server.py --latency 0.2``) it prints its
base URL and serves until killed, so a benchmark can keep its CPU separate.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODELS = ("teacher-1", "teacher-reasoner", "teacher-think")
WEB_PAGE = (
    b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Wi-Fi login</body></html>"
)
QUESTION_ASK = re.compile(r"Write (\d+) diverse questions about (.+?)\.\n")
DOCUMENT_ASK = re.compile(
    r"Section: (.*?)\n\n<excerpt>\n(.*?)\n</excerpt>\n\nWrite (\d+) questions", re.DOTALL
)
VOCABULARY = (
    "cache index shard replica lock queue buffer thread kernel driver token schema "
    "tensor gradient batch stream socket packet router signal"
).split()


def answer_for(user: str) -> str:
    """The answer the server gives to ``user``: deterministic, easy to assert on."""
    return f"Answer to: {user}"


def document_questions(section: str, excerpt: str, n: int) -> list[str]:
    """The questions the server writes on a document chunk: distinct, naming the section."""
    import hashlib

    tags = [hashlib.sha256(f"{i} {excerpt}".encode()).hexdigest()[:8] for i in range(n)]
    return [f"How is {tag} handled in {section}?" for tag in tags]


def reasoning_for(user: str) -> str:
    return f"Thinking about: {user}"


@dataclass
class Fault:
    """One scripted misbehaviour for the next ``times`` requests whose prompt contains ``match``.

    kinds: ``status`` (an error reply, optionally with ``retry_after`` and ``message``), ``sleep``
    (answer after ``seconds``), ``malformed`` (a body that is not JSON), ``drop``
    (close the socket), ``cut`` (a stream that stops mid-answer), ``close_only``
    (reasoning then ``</think>`` without an opening tag), ``length`` (cut by
    max_tokens), ``refusal``, ``empty``, ``html`` (a 200 web page instead of the answer),
    ``html_error`` (a web page sent with the error ``status``, as a website or a firewall does),
    ``prose`` (a document-questions reply as chatty text around a fenced JSON block, as
    a server that ignores ``response_format`` writes it).
    """

    kind: str
    match: str = ""
    times: int = 1
    status: int = 500
    retry_after: float | None = None
    seconds: float = 0.0
    message: str = ""


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default 5 drops SYNs when 32 clients connect at once
    daemon_threads = True


class TeacherServer:
    """A threaded loopback server; use as a context manager or call start/stop."""

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        api_key: str | None = "sk-test-0123456789abcdef",
        models: tuple[str, ...] = MODELS,
        port: int = 0,
        portal: bool = False,
    ):
        self.latency_s = latency_s
        self.portal = portal
        self.hits: list[tuple[str, str, str]] = []
        self.api_key = api_key
        self.models = models
        self.requests: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._questions = 0
        self._httpd = _Server(("127.0.0.1", port), _handler(self))
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> TeacherServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> TeacherServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fault(self, kind: str, **options: Any) -> Fault:
        fault = Fault(kind, **options)
        with self._lock:
            self.faults.append(fault)
        return fault

    def answered(self) -> list[str]:
        """User prompts of the requests that got a complete 200 answer, in order."""
        return [r["user"] for r in self.requests if r["status"] == 200 and r["fault"] is None]

    def _take_fault(self, user: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.match in user:
                    fault.times -= 1
                    return fault
        return None

    def _questions_for(self, count: int, topic: str) -> str:
        """Numbered questions; every fifth repeats the one before, nearly word for word."""
        lines = []
        with self._lock:
            start = self._questions
            self._questions += count
        for k in range(start, start + count):
            n = k - 1 if k % 5 == 4 else k
            w = [VOCABULARY[(n * step) % len(VOCABULARY)] for step in (1, 3, 7, 11)]
            text = f"Question {n} about {topic}: how does the {w[0]} {w[1]} relate to the {w[2]} {w[3]} in practice"
            lines.append(f"{k - start + 1}. {text}{' today' if n != k else ''}?")
        return "Here are the questions:\n" + "\n".join(lines)


def _handler(server: TeacherServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else headers then body stall 40 ms on delayed ACKs

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, code: str, headers=None) -> None:
            self._json(status, {"error": {"message": message, "type": code, "code": code}}, headers)

        def _authorised(self) -> bool:
            given = self.headers.get("Authorization", "")
            if server.api_key is None or given == f"Bearer {server.api_key}":
                return True
            shown = given.removeprefix("Bearer ")
            self._error(401, f"Incorrect API key provided: {shown}", "invalid_api_key")
            return False

        def _seen(self) -> bool:
            """Log the request; ``False`` when the portal answered it with a web page."""
            with server._lock:
                key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                server.hits.append((self.command, self.path, key))
            if server.portal:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._raw(200, WEB_PAGE, "text/html; charset=utf-8")
            return not server.portal

        def do_GET(self) -> None:
            if not self._seen():
                return
            if self.path.rstrip("/") != "/v1/models":
                return self._error(404, f"no route {self.path}", "not_found")
            if self._authorised():
                data = [{"id": m, "object": "model", "owned_by": "test"} for m in server.models]
                self._json(200, {"object": "list", "data": data})

        def do_POST(self) -> None:
            if not self._seen():
                return
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path.rstrip("/") != "/v1/chat/completions":
                return self._error(404, f"no route {self.path}", "not_found")
            messages = body.get("messages", [])
            user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
            fault = server._take_fault(user)
            entry = {
                "user": user,
                "model": body.get("model"),
                "stream": bool(body.get("stream")),
                "body": body,
                "status": 200,
                "fault": fault.kind if fault else None,
                "t": time.monotonic(),
            }
            with server._lock:
                server.requests.append(entry)
            if not self._authorised():
                entry["status"] = 401
                return
            if body.get("model") not in server.models:
                entry["status"] = 404
                message = f"The model `{body.get('model')}` does not exist"
                return self._error(404, message, "model_not_found")
            if server.latency_s:
                time.sleep(server.latency_s)
            if fault and fault.kind == "status":
                entry["status"] = fault.status
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = str(fault.retry_after)
                default = {402: "Insufficient Balance"}.get(fault.status, "scripted error")
                message = fault.message or default
                return self._error(fault.status, message, f"http_{fault.status}", headers)
            if fault and fault.kind == "sleep":
                time.sleep(fault.seconds)
            if fault and fault.kind in ("html", "html_error"):
                status = 200 if fault.kind == "html" else fault.status
                return self._raw(status, WEB_PAGE, "text/html; charset=utf-8")
            if fault and fault.kind == "drop":
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self._answer(body, user, fault)

        def _answer(self, body: dict[str, Any], user: str, fault: Fault | None) -> None:
            model = body["model"]
            kind = fault.kind if fault else None
            ask = QUESTION_ASK.search(user)
            content = server._questions_for(int(ask[1]), ask[2]) if ask else answer_for(user)
            document = DOCUMENT_ASK.search(user)
            if document:
                questions = document_questions(document[1], document[2], int(document[3]))
                content = json.dumps({"questions": questions}, ensure_ascii=False)
                json_asked = body.get("response_format", {}).get("type") == "json_object"
                if kind == "prose" or not json_asked:
                    content = f"Sure! Here they are:\n```json\n{content}\n```\nHope this helps."
            reasoning = None
            finish = "stop"
            if "reasoner" in model:
                reasoning = reasoning_for(user)
            elif "think" in model:
                content = f"<think>{reasoning_for(user)}</think>\n\n{content}"
            if kind == "close_only":
                content = f"{reasoning_for(user)}</think>\n\n{content}"
            elif kind == "length":
                content, finish = content[: len(content) // 2], "length"
            elif kind == "refusal":
                content = "I'm sorry, but I can't help with that."
            elif kind == "empty":
                content = ""
            prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(content.split()) + len((reasoning or "").split()),
            }
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            base = {"id": "chatcmpl-test", "created": int(time.time()), "model": model}
            if not body.get("stream"):
                if kind == "malformed":
                    return self._raw(
                        200, b'{"id": "chatcmpl-test", "choices": [', "application/json"
                    )
                message = {"role": "assistant", "content": content}
                if reasoning is not None:
                    message["reasoning_content"] = reasoning
                choice = {"index": 0, "message": message, "finish_reason": finish}
                return self._json(
                    200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
                )
            self._stream(base, content, reasoning, finish, usage, body, kind)

        def _raw(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, base, content, reasoning, finish, usage, body, kind) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def send(data: str) -> None:
                raw = f"data: {data}\n\n".encode()
                self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")

            def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> None:
                choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
                send(json.dumps({**base, "object": "chat.completion.chunk", "choices": [choice]}))

            chunk({"role": "assistant", "content": ""})
            if reasoning is not None:
                chunk({"reasoning_content": reasoning})
            words = re.findall(r"\S+\s*", content) or [""]
            pieces = ["".join(words[i : i + 8]) for i in range(0, len(words), 8)]
            for n, piece in enumerate(pieces):
                if kind == "cut" and n == len(pieces) // 2:
                    self.wfile.write(b"0\r\n\r\n")
                    return
                if kind == "malformed" and n == 0:
                    send("{not json")
                chunk({"content": piece})
            chunk({}, finish)
            if (body.get("stream_options") or {}).get("include_usage"):
                send(
                    json.dumps(
                        {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
                    )
                )
            send("[DONE]")
            self.wfile.write(b"0\r\n\r\n")

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per answer")
    parser.add_argument("--api-key", default="sk-test-0123456789abcdef")
    args = parser.parse_args()
    server = TeacherServer(latency_s=args.latency, api_key=args.api_key, port=args.port)
    print(server.base_url, flush=True)
    server._httpd.serve_forever()


if __name__ == "__main__":
    main()
