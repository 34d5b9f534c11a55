"""ChildLog: the live output of a ``stillroom`` child process, and one message when it ends."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.message import Message
from textual.worker import Worker, WorkerState, get_current_worker

from engine.i18n import _
from tui.child import Failure, failure, follow, start_cli
from tui.widgets.wrapped_log import WrappedLog
from tui.worker_errors import ForwardsWorkerErrors

TRACEBACK = "Traceback (most recent call last):"


class ChildLog(ForwardsWorkerErrors, WrappedLog):
    """Lines a child prints, as it prints them (wrapped); a traceback stays in the log file only.

    Closing the screen stops the following, not the child: it finishes on its own.
    """

    DEFAULT_CSS = """
    ChildLog {
        height: auto;
        max-height: 6;
        color: $text-muted;
        background: $surface;
    }
    """

    class Printed(Message):
        """One line of the child's output (handled by the log itself)."""

        bubble = False

        def __init__(self, line: str) -> None:
            super().__init__()
            self.line = line

    class Finished(Message):
        """The child exited with ``code``; ``failure`` says why when it is not 0."""

        def __init__(self, child_log: ChildLog, code: int, failure: Failure | None) -> None:
            super().__init__()
            self.child_log = child_log
            self.code = code
            self.failure = failure

        @property
        def control(self) -> ChildLog:
            return self.child_log

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(max_lines=500, id=id)
        self.running = False
        self._in_traceback = False

    def start(self, args: Sequence[str], log_path: Path) -> None:
        """Run ``stillroom ARGS`` (output kept in ``log_path``) and show what it prints."""
        self.clear()
        self.running = True
        self._in_traceback = False
        self._follow(list(args), log_path)

    @work(thread=True, exit_on_error=False, exclusive=True, group="child")
    def _follow(self, args: list[str], log_path: Path) -> None:
        worker = get_current_worker()
        try:
            child = start_cli(args, log_path)
        except OSError as error:
            why = Failure(str(error), _("Check the run folder."))
            self.post_message(self.Finished(self, 1, why))
            return
        lines: list[str] = []

        def printed(line: str) -> None:
            lines.append(line)
            self.post_message(self.Printed(line))

        code = follow(child, log_path, printed, lambda: worker.is_cancelled)
        if code is not None:
            self.post_message(self.Finished(self, code, failure(lines, log_path) if code else None))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Following failed (the app shows the error too): no longer running, so ctrl+r works."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            why = Failure(
                _("following the child failed: {error}").format(error=repr(error)),
                _("Its output is in the log file."),
            )
            self.post_message(self.Finished(self, 1, why))

    @on(Printed)
    def _printed(self, message: Printed) -> None:
        self._in_traceback = self._in_traceback or message.line.startswith(TRACEBACK)
        if not self._in_traceback:
            self.say(Text(message.line))

    @on(Finished)
    def _finished(self, message: Finished) -> None:
        self.running = False
