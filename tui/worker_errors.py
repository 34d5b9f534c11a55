"""Getting a failed worker to the app, which says so on the current step.

Every worker runs with ``exit_on_error=False``, so one that raises no longer ends
the wizard; but Textual sends ``Worker.StateChanged`` only to the node that
started the worker (it does not bubble). Screens and widgets that start workers
take this mixin, which hands a failure to the app's one handler.
"""

from __future__ import annotations

from textual.worker import Worker, WorkerState


class ForwardsWorkerErrors:
    """Mixin for a Screen or Widget with workers: their failures go to the app."""

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            self.app.post_message(event)  # type: ignore[attr-defined]
