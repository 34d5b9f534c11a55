"""Chat: talk to the newest trained run of the plan, and compare it with its base model.

The student loads in a child process (``python -m engine chat-serve``), so the
TUI never imports torch. A thread worker finds the run, starts the child and
posts each JSON line it writes as :class:`ChatScreen.Served`; the screen owns
the history and writes requests to the child's stdin. Leaving the step or
quitting ends the child; coming back loads the student again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Footer, Input, Static

from tui.screens.base import StepScreen
from tui.widgets.chat_log import ChatLog
from tui.widgets.step_bar import StepBar

LOG_FILE = "chat.log"
REPO_ROOT = Path(__file__).resolve().parents[2]


class ChatScreen(StepScreen):
    """The run being talked to, the transcript, and one input line (Enter sends)."""

    STEP = "chat"
    AUTO_FOCUS = "#prompt"
    BINDINGS = [
        Binding("ctrl+b", "toggle_base", "Student/base", priority=True),
        Binding("ctrl+l", "clear", "Clear", priority=True),
    ]
    DEFAULT_CSS = """
    ChatScreen #chat {
        height: 1fr;
        padding: 0 1;
    }
    ChatScreen #chat-state {
        color: $text-muted;
    }
    ChatScreen #chat-state.-base {
        color: $text-warning;
    }
    ChatScreen #chat-state.-error {
        color: $text-error;
    }
    """
    max_new_tokens = 512  # an answer that reaches it is marked cut

    class Started(Message):
        """The child for ``run_dir`` is loading; ``child`` takes requests on its stdin."""

        def __init__(self, run_dir: Path, child: subprocess.Popen[str]) -> None:
            super().__init__()
            self.run_dir = run_dir
            self.child = child

    class Served(Message):
        """One line from the child (or ``no-run`` / ``exited``, said for it)."""

        def __init__(self, event: dict[str, Any], child: subprocess.Popen[str] | None) -> None:
            super().__init__()
            self.event = event
            self.child = child

    def __init__(self) -> None:
        super().__init__()
        self.state = "idle"  # idle, loading, ready, answering, no-run, failed
        self.base = False
        self.history: list[dict[str, str]] = []
        self.run_dir: Path | None = None
        self.child: subprocess.Popen[str] | None = None
        self.shown = False

    def compose(self) -> ComposeResult:
        yield StepBar(self.STEP)
        with Vertical(id="chat"):
            yield Static("", id="chat-state", markup=False)
            yield ChatLog(id="transcript")
            yield Input(placeholder="Ask the student; Enter sends", id="prompt")
        yield Footer()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.shown = True
        self.query_one("#prompt", Input).focus()
        if self.child is None and self.state not in ("loading",):
            self._show_state("loading")
            self._serve(self.app.runs_dir, self.app.plan.output.name)

    def on_screen_suspend(self) -> None:
        self.shown = False
        self._stop_child()
        if self.state in ("loading", "ready", "answering"):
            self.state = "idle"

    def on_unmount(self) -> None:
        self._stop_child()

    # The worker: it posts, never touches widgets.

    @work(thread=True, exclusive=True, group="chat")
    def _serve(self, runs_dir: str, name: str) -> None:
        """Find the newest trained run named ``name-…``, start its child, relay its lines."""
        run_dir = _trained_run(runs_dir, name)
        if run_dir is None:
            self.post_message(self.Served({"type": "no-run", "runs_dir": runs_dir}, None))
            return
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
        try:
            with open(run_dir / LOG_FILE, "ab") as log:
                child = subprocess.Popen(
                    [sys.executable, "-m", "engine", "chat-serve", str(run_dir)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                    text=True, encoding="utf-8", bufsize=1, env=env,
                )  # fmt: skip
        except OSError as error:
            failed = {"type": "error", "message": str(error), "hint": "Check the run folder."}
            self.post_message(self.Served(failed, None))
            return
        self.post_message(self.Started(run_dir, child))
        assert child.stdout is not None
        for line in child.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self.post_message(self.Served(event, child))
        code = child.wait()
        tail = "".join(deque(_read_lines(run_dir / LOG_FILE), maxlen=6)).strip()
        self.post_message(self.Served({"type": "exited", "code": code, "log": tail}, child))

    # Handlers: they own the state.

    @on(Started)
    def _started(self, message: Started) -> None:
        if not self.shown:  # left the step while the worker was starting it
            _terminate(message.child)
            return
        self.child, self.run_dir = message.child, message.run_dir
        self._show_state("loading")

    @on(Served)
    def _served(self, message: Served) -> None:
        event, kind = message.event, message.event.get("type")
        if message.child is not None and message.child is not self.child:
            return  # a child this screen already let go
        log = self.query_one(ChatLog)
        if kind == "ready":
            self._show_state("ready")
        elif kind == "token" and self.state == "answering":
            log.add_piece(event["text"])
        elif kind == "answer" and self.state == "answering":
            self.history.append({"role": "assistant", "content": event["text"]})
            log.finish(event["text"], _meta(event, self.max_new_tokens), cut=event["cut"])
            self._show_state("ready")
        elif kind == "error":
            hint = f"\n→ {event['hint']}" if event.get("hint") else ""
            log.note(f"✗ {event['message']}{hint}", error=True)
            if self.state == "answering":
                self.history.pop()  # the question the student could not answer
                self._show_state("ready")
        elif kind == "no-run":
            self._show_state("no-run", event["runs_dir"])
        elif kind == "exited":
            self.child = None
            if self.state in ("loading", "ready", "answering"):
                if event["log"]:
                    log.note(event["log"], error=True)
                self._show_state("failed", str(event["code"]))

    @on(Input.Submitted, "#prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not text:
            return
        if self.state != "ready" or self.child is None or self.child.stdin is None:
            busy = "is answering" if self.state == "answering" else "is not ready"
            self.notify(f"The student {busy}; wait a moment.", severity="warning")
            return
        event.input.clear()
        self.history.append({"role": "user", "content": text})
        request = {"messages": self.history, "base": self.base,
                   "max_new_tokens": self.max_new_tokens}  # fmt: skip
        try:
            self.child.stdin.write(json.dumps(request) + "\n")
            self.child.stdin.flush()
        except OSError:
            self.history.pop()
            self.notify("The chat process has gone; leave and reopen the step.", severity="error")
            return
        log = self.query_one(ChatLog)
        log.add_user(text)
        log.start_answer(self.base)
        self._show_state("answering")

    # What the user sees

    def _show_state(self, state: str, detail: str = "") -> None:
        self.state = state
        name = self.run_dir.name if self.run_dir else ""
        who = "the BASE model (adapter off)" if self.base else "the student (adapter on)"
        output = self.app.plan.output.name
        text = {
            "idle": "",
            "loading": f"Loading {name or 'the newest trained run'} in its own process…",
            "ready": f"{name}: talking to {who}. ctrl+b switches, ctrl+l clears the history.",
            "answering": f"{name}: {who} is answering…",
            "no-run": f"No trained run of {output!r} in {detail}/ yet: train one in the Train "
            "step (ctrl+p), or `stillroom chat RUN` talks to any run.",
            "failed": f"✗ the chat process for {name} stopped (exit {detail}); "
            f"its output is in {name}/{LOG_FILE}. Leave and reopen the step to retry.",
        }[state]
        label = self.query_one("#chat-state", Static)
        label.update(text)
        label.set_class(state == "failed", "-error")
        label.set_class(self.base and state in ("ready", "answering"), "-base")

    def _stop_child(self) -> None:
        child, self.child = self.child, None
        if child is not None:
            _terminate(child)

    # Actions

    def action_toggle_base(self) -> None:
        self.base = not self.base
        if self.state in ("ready", "answering"):
            self._show_state(self.state)
        else:
            self.notify(
                "Answers will come from the " + ("base model." if self.base else "student.")
            )

    def action_clear(self) -> None:
        if self.state == "answering":
            self.notify("Wait for the answer to finish, then clear.", severity="warning")
            return
        self.history.clear()
        self.query_one(ChatLog).clear()


def _trained_run(runs_dir: str, name: str) -> Path | None:
    """The newest run named ``name-…`` that has finished (or been cancelled) with an adapter."""
    from engine.runs import list_runs

    for run in list_runs(runs_dir):
        path = Path(run.path)
        trained = (path / "adapter" / "adapter_config.json").is_file()
        if run.name.startswith(f"{name}-") and run.state in ("finished", "cancelled") and trained:
            return path
    return None


def _terminate(child: subprocess.Popen[str]) -> None:
    """Ask the child to go: stdin closed (it exits after loading) and SIGTERM now."""
    try:
        if child.stdin is not None:
            child.stdin.close()
    except OSError:
        pass
    if child.poll() is None:
        child.terminate()


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    except OSError:
        return []


def _meta(answer: dict[str, Any], budget: int) -> str:
    """How the answer ended, and how fast it came."""
    speed = []
    if answer.get("ttft_s") is not None:
        speed.append(f"{answer['ttft_s']:.2f} s to first token")
    if answer.get("tokens_per_s"):
        speed.append(f"{answer['tokens_per_s']:.0f} tok/s")
    if answer["cut"]:
        ending = f"✂ cut by the budget of {budget} tokens (the answer is unfinished)"
    elif answer["ended_cleanly"]:
        ending = "✓ ended cleanly"
    else:
        ending = "stopped"
    return " · ".join([ending, *speed])
