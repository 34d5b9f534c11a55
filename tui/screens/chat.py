"""Chat: talk to the newest trained run of the plan (or the run ``stillroom chat RUN`` names),
and compare it with its base and teacher.

The student loads in a child process (``python -m engine chat-serve``), so the
TUI never imports torch. A thread worker finds the run, starts the child and
posts each JSON line it writes as :class:`ChatScreen.Served`; the screen owns
the history and writes requests to the child's stdin. Leaving the step or
quitting ends the child; coming back loads the student again.

In compare mode one prompt is answered in turn by the student, the base model
(the same child, adapter off) and the plan's teacher through its API (a thread
worker); later turns continue from the student's answer. The answer budget,
system prompt and temperature live on the screen for the session, not in the plan.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from engine.chat_options import ChatOptions
from engine.i18n import N_, _
from tui.child import child_env
from tui.screens.base import StepScreen
from tui.screens.results import ChildScreen, EvalScreen, ExportScreen
from tui.widgets.chat_log import ChatLog
from tui.widgets.footer import Footer
from tui.widgets.step_bar import StepBar

if TYPE_CHECKING:
    from engine.chat import TeacherAnswer
    from engine.plan import TeacherPlan

LOG_FILE = "chat.log"
FIELDS = ("budget", "system", "temperature")  # the options dialog's inputs, in parse order


@dataclass
class Turn:
    """One prompt on its way round: who still answers it, with what history and options."""

    messages: list[dict[str, str]]
    options: ChatOptions
    pending: list[str]  # student, base, teacher: the first one's answer joins the history

    def __post_init__(self) -> None:
        self.kept = self.pending[0]


class ChatScreen(StepScreen):
    """The run being talked to, the transcript, and one input line (Enter sends)."""

    STEP = "chat"
    AUTO_FOCUS = "#prompt"
    BINDINGS = [
        Binding("ctrl+b", "toggle_base", N_("Base"), priority=True),
        Binding("ctrl+t", "toggle_compare", N_("Compare"), priority=True),
        Binding("ctrl+o", "options", N_("Options"), priority=True),
        # Off the footer for room at 80 columns; the state line names it instead.
        Binding("ctrl+l", "clear", N_("Clear"), priority=True, show=False),
        Binding("ctrl+e", "evaluate", N_("Eval"), priority=True),
        Binding("ctrl+x", "export", N_("Export"), priority=True),
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
    ChatScreen #chat-state.-compare {
        color: $text-accent;
    }
    ChatScreen #chat-state.-error {
        color: $text-error;
    }
    """

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

    class TeacherAnswered(Message):
        """The teacher's answer (or why there is none) to ``turn``."""

        def __init__(self, answer: TeacherAnswer, turn: Turn) -> None:
            super().__init__()
            self.answer = answer
            self.turn = turn

    def __init__(self) -> None:
        super().__init__()
        self.state = "idle"  # idle, loading, ready, answering, no-run, failed
        self.mode = "student"  # student, base, compare
        self.options = self.app.chat_options  # as `stillroom chat RUN --temperature …` asked
        self.history: list[dict[str, str]] = []
        self.turn: Turn | None = None
        self.run_dir: Path | None = None
        self.child: subprocess.Popen[str] | None = None
        self.shown = False

    def compose(self) -> ComposeResult:
        yield StepBar(self.STEP)
        with Vertical(id="chat"):
            yield Static("", id="chat-state", markup=False)
            yield ChatLog(id="transcript")
            yield Input(placeholder=_("Ask the student; Enter sends"), id="prompt")
        yield Footer(compact=True)

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        self.shown = True
        self.query_one("#prompt", Input).focus()
        if self.child is None and self.state not in ("loading",):
            self._show_state("loading")
            self._serve(self.app.runs_dir, self.app.plan.output.name, self.app.chat_run)

    def on_screen_suspend(self) -> None:
        if self in self.app.screen_stack:
            return  # a dialog on top (options, show as command): the student stays loaded
        self.shown = False
        self._stop_child()
        self.turn = None
        if self.state in ("loading", "ready", "answering"):
            self.state = "idle"

    def on_unmount(self) -> None:
        self._stop_child()

    # The workers: they post, never touch widgets.

    @work(thread=True, exit_on_error=False, exclusive=True, group="chat")
    def _serve(self, runs_dir: str, name: str, pinned: Path | None) -> None:
        """Find the run (``pinned``, else the newest trained one named ``name-…``), start its
        child, relay its lines."""
        run_dir = pinned or _trained_run(runs_dir, name)
        if run_dir is None:
            self.post_message(self.Served({"type": "no-run", "runs_dir": runs_dir}, None))
            return
        try:
            with open(run_dir / LOG_FILE, "ab") as log:
                child = subprocess.Popen(
                    [sys.executable, "-m", "engine", "chat-serve", str(run_dir)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                    text=True, encoding="utf-8", bufsize=1, env=child_env(),
                )  # fmt: skip
        except OSError as error:
            failed = {"type": "error", "message": str(error), "hint": _("Check the run folder.")}
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

    @work(thread=True, exit_on_error=False, group="teacher")
    def _ask_teacher(self, teacher: TeacherPlan, turn: Turn) -> None:
        """The teacher through its API; a missing key or an outage comes back as a note."""
        from engine.chat import ask_teacher

        answer = ask_teacher(teacher, turn.messages, turn.options.system or None)
        self.post_message(self.TeacherAnswered(answer, turn))

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
        turn = self.turn
        if kind == "ready":
            self._show_state("ready")
        elif kind == "token" and turn is not None:
            log.add_piece(event["text"])
        elif kind == "answer" and turn is not None:
            if turn.pending.pop(0) == turn.kept:
                self.history.append({"role": "assistant", "content": event["text"]})
            meta = _meta(event, turn.options.max_new_tokens)
            log.finish(event["text"], meta, cut=event["cut"])
            self._next_answer()
        elif kind == "error":
            hint = f"\n→ {event['hint']}" if event.get("hint") else ""
            log.note(f"✗ {event['message']}{hint}", error=True)
            if turn is not None:
                self._end_turn(unanswered=turn.pending[0] == turn.kept)
        elif kind == "no-run":
            self._show_state("no-run", event["runs_dir"])
        elif kind == "exited":
            self.child, self.turn = None, None
            if self.state in ("loading", "ready", "answering"):
                if event["log"]:
                    log.note(event["log"], error=True)
                self._show_state("failed", str(event["code"]))

    @on(TeacherAnswered)
    def _teacher_answered(self, message: TeacherAnswered) -> None:
        if message.turn is not self.turn:
            return  # the turn was given up (step left, child gone)
        message.turn.pending.pop(0)
        answer, log = message.answer, self.query_one(ChatLog)
        if answer.note:
            log.finish(_("(no answer)"), f"✗ {answer.note}", cut=True)
        else:
            speed = f" · {answer.latency_s:.2f} s" if answer.latency_s is not None else ""
            log.finish(answer.text, _("✓ answered through the API") + speed, cut=False)
        self._next_answer()

    @on(Input.Submitted, "#prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if not text:
            return
        if self.state != "ready" or self.child is None:
            if self.state == "answering":
                busy = _("The student is answering; wait a moment.")
            else:
                busy = _("The student is not ready; wait a moment.")
            self.notify(busy, severity="warning")
            return
        event.input.clear()
        self.history.append({"role": "user", "content": text})
        self.turn = Turn(list(self.history), self.options, self._answerers())
        self.query_one(ChatLog).add_user(text)
        self._next_answer()

    # The turn, answer by answer

    def _answerers(self) -> list[str]:
        if self.mode != "compare":
            return [self.mode]
        return ["student", "base"] + (["teacher"] if self.app.plan.teacher.model else [])

    def _next_answer(self) -> None:
        """Ask whoever is next for the current turn; the step is ready once nobody is left."""
        turn = self.turn
        if turn is None or not turn.pending:
            self._end_turn()
            return
        who = turn.pending[0]
        self.query_one(ChatLog).start_answer(who)
        self._show_state("answering")
        if who == "teacher":
            self._ask_teacher(self.app.plan.teacher, turn)
            return
        request = {"messages": turn.messages, "base": who == "base", **turn.options.generation()}
        if not self._send(request):
            self.notify(
                _("The chat process has gone; leave and reopen the step."), severity="error"
            )
            self._end_turn(unanswered=who == turn.kept)

    def _send(self, request: dict[str, Any]) -> bool:
        """Write one request line to the child; False when it has gone."""
        stdin = self.child.stdin if self.child is not None else None
        if stdin is None:
            return False
        try:
            stdin.write(json.dumps(request) + "\n")
            stdin.flush()
        except OSError:
            return False
        return True

    def _end_turn(self, *, unanswered: bool = False) -> None:
        """Back to ready; an unanswered question leaves the history as it was."""
        if unanswered and self.history and self.history[-1]["role"] == "user":
            self.history.pop()
        self.turn = None
        self._show_state("ready")

    # What the user sees

    def _show_state(self, state: str, detail: str = "") -> None:
        self.state = state
        name = self.run_dir.name if self.run_dir else ""
        options = self.options
        settings = [_("budget {tokens} tokens").format(tokens=options.max_new_tokens)]
        if options.temperature:
            settings.append(_("temperature {value}").format(value=f"{options.temperature:g}"))
        if options.system:
            settings.append(_("system prompt set"))
        who = self._who()
        loading = _("Loading the newest trained run in its own process…")
        if name:
            loading = _("Loading {run} in its own process…").format(run=name)
        text = {
            "idle": "",
            "loading": loading,
            "ready": " · ".join([f"{name}: {who}", *settings, _("ctrl+l clears the history")]),
            "answering": _("{run}: {who} · answering…").format(run=name, who=who),
            "no-run": _(
                "No trained run of {output} in {folder}/ yet: train one in the Train "
                "step (ctrl+p), or `stillroom chat RUN` talks to any run."
            ).format(output=repr(self.app.plan.output.name), folder=detail),
            "failed": _(
                "✗ the chat process for {run} stopped (exit {code}); "
                "its output is in {log}. Leave and reopen the step to retry."
            ).format(run=name, code=detail, log=f"{name}/{LOG_FILE}"),
        }[state]
        label = self.query_one("#chat-state", Static)
        label.update(text)
        live = state in ("ready", "answering")
        label.set_class(state == "failed", "-error")
        label.set_class(live and self.mode == "base", "-base")
        label.set_class(live and self.mode == "compare", "-compare")

    def _who(self) -> str:
        """Who answers the next prompt, in words."""
        if self.mode == "base":
            return _("talking to the BASE model (adapter off)")
        if self.mode == "student":
            return _("talking to the student (adapter on)")
        teacher = self.app.plan.teacher.model
        if teacher:
            return _("COMPARE: student, base, teacher {model}").format(model=teacher)
        return _("COMPARE: student, base, no teacher (the plan names none)")

    def _stop_child(self) -> None:
        child, self.child = self.child, None
        if child is not None:
            _terminate(child)

    # Actions

    def _switch(self, mode: str) -> None:
        self.mode = mode
        if self.state in ("ready", "answering"):
            self._show_state(self.state)
        else:
            self.notify(_("Next prompts: {who}.").format(who=self._who()))

    def action_toggle_base(self) -> None:
        self._switch("student" if self.mode == "base" else "base")

    def action_toggle_compare(self) -> None:
        self._switch("student" if self.mode == "compare" else "compare")

    def action_options(self) -> None:
        def chosen(options: ChatOptions | None) -> None:
            if options is not None:
                self.options = options
                if self.state in ("ready", "answering"):
                    self._show_state(self.state)
                self.notify(_("Chat options saved for this session."))

        self.app.push_screen(OptionsScreen(self.options), chosen)

    def action_evaluate(self) -> None:
        self._open_for_run(EvalScreen)

    def action_export(self) -> None:
        self._open_for_run(ExportScreen)

    def _open_for_run(self, dialog: type[ChildScreen]) -> None:
        """Evaluation and export work on the run being talked to, loaded or not."""
        run_dir = self.run_dir or _trained_run(self.app.runs_dir, self.app.plan.output.name)
        if run_dir is None:
            self.notify(_("Train a run first (the Train step, ctrl+p)."), severity="warning")
            return
        self.app.push_screen(dialog(run_dir))

    def action_clear(self) -> None:
        if self.state == "answering":
            self.notify(_("Wait for the answer to finish, then clear."), severity="warning")
            return
        self.history.clear()
        self.query_one(ChatLog).clear()


class OptionsScreen(ModalScreen[ChatOptions | None]):
    """The chat's answer budget, system prompt and temperature; Enter saves, escape keeps."""

    DEFAULT_CSS = """
    OptionsScreen {
        align: center middle;
    }
    OptionsScreen > Vertical {
        width: 100%;
        max-width: 76;
        height: auto;
        border: round $accent;
        padding: 0 1;
        background: $surface;
    }
    OptionsScreen Horizontal {
        height: auto;
    }
    OptionsScreen Label {
        width: 14;
        padding: 1 0;
    }
    OptionsScreen Input {
        width: 1fr;
    }
    OptionsScreen .title {
        text-style: bold;
    }
    OptionsScreen #options-error {
        color: $text-error;
    }
    OptionsScreen .hint {
        color: $text-muted;
    }
    """
    BINDINGS = [Binding("escape", "dismiss", N_("Keep as they were"))]

    def __init__(self, options: ChatOptions) -> None:
        super().__init__()
        self.options = options

    def compose(self) -> ComposeResult:
        options = self.options
        with Vertical():
            yield Static(_("Chat options (this session only)"), classes="title")
            for label, name, value in (
                (_("Answer budget"), "budget", str(options.max_new_tokens)),
                (_("System prompt"), "system", options.system),
                (_("Temperature"), "temperature", f"{options.temperature:g}"),
            ):
                with Horizontal():
                    yield Label(label)
                    yield Input(value, id=name)
            yield Static("", id="options-error", markup=False)
            yield Static(
                _(
                    "Tokens per answer; the prompt sent with every turn (empty: none); "
                    "0 answers greedily. Enter saves, escape keeps the old values."
                ),
                classes="hint",
            )
        yield Footer(compact=True)

    @on(Input.Submitted)
    def _save(self, event: Input.Submitted) -> None:
        event.stop()
        typed = [self.query_one(f"#{name}", Input).value for name in FIELDS]
        try:
            options = ChatOptions.parse(*typed)
        except ValueError as error:
            self.query_one("#options-error", Static).update(
                _("✗ {error} Nothing was changed.").format(error=error)
            )
            return
        self.dismiss(options)


def _trained_run(runs_dir: str, name: str) -> Path | None:
    """The newest run named ``name-…`` that has finished (or been cancelled) with an adapter."""
    from engine.runs import list_runs, trained_adapter

    for run in list_runs(runs_dir):
        path = Path(run.path)
        if run.name.startswith(f"{name}-") and run.state in ("finished", "cancelled"):
            if trained_adapter(path):
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
        speed.append(_("{seconds} s to first token").format(seconds=f"{answer['ttft_s']:.2f}"))
    if answer.get("tokens_per_s"):
        speed.append(f"{answer['tokens_per_s']:.0f} tok/s")
    if answer["cut"]:
        ending = _("✂ cut by the budget of {budget} tokens (the answer is unfinished)").format(
            budget=budget
        )
    elif answer["ended_cleanly"]:
        ending = _("✓ ended cleanly")
    else:
        ending = _("stopped")
    return " · ".join([ending, *speed])
