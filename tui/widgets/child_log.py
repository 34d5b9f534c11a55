"""ChildLog: what a ``python -m engine JOB`` child reports, as it reports it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.worker import Worker, WorkerState, get_current_worker

from engine import events as ev
from engine.i18n import _
from tui.child import JobEvent, run_detached
from tui.widgets.wrapped_log import WrappedLog
from tui.wording import progress_words
from tui.worker_errors import ForwardsWorkerErrors


class ChildLog(ForwardsWorkerErrors, WrappedLog):
    """A child job's log lines, progress and warnings (wrapped); its events bubble on to the
    screen, which takes the result and the ending. Library output stays in the job's log file.

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

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(max_lines=500, id=id)
        self.running = False

    def start(self, job: str, args: Sequence[str], run_dir: Path) -> None:
        """Run ``python -m engine JOB ARGS`` for ``run_dir`` and show what it reports."""
        self.clear()
        self.running = True
        self._follow(job, list(args), run_dir)

    @work(thread=True, exit_on_error=False, exclusive=True, group="child")
    def _follow(self, job: str, args: list[str], run_dir: Path) -> None:
        worker = get_current_worker()
        run_detached(job, args, run_dir, self.post_message, lambda: worker.is_cancelled)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Following failed (the app shows the error too): no longer running, so ctrl+r works."""
        super().on_worker_state_changed(event)
        if event.state == WorkerState.ERROR:
            failed = ev.Error(
                kind="exception",
                message=_("following the child failed: {error}").format(
                    error=repr(event.worker.error)
                ),
                hint=_("Its output is in the log file."),
            )
            self.post_message(JobEvent(failed))

    @on(JobEvent)
    def _event(self, message: JobEvent) -> None:
        """Say what is worth a line; the message bubbles on to the screen either way."""
        event = message.event
        if isinstance(event, ev.Log):
            self.say(Text(event.line))
        elif isinstance(event, ev.Progress):
            self.say(Text(progress_words(event)))
        elif isinstance(event, ev.Warning):
            self.say(Text(f"! {event.message}" + (f" ({event.hint})" if event.hint else "")))
        elif event.type in ev.TERMINAL:
            self.running = False
