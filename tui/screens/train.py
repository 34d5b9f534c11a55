"""Train: launch the plan in its own process, then watch it: GPU, progress, loss, log.

The run is a detached child (``engine.runs.start``), so quitting the app, or
losing the SSH link, leaves it training; opening this step again while a run
of the plan is live follows that run instead of starting another. One thread
worker tails ``events.jsonl`` and posts each event of the followed attempt as
:class:`TrainScreen.Followed` (a resumed run's earlier attempts as one log line each);
GPU readings may replace each other in the queue, steps (loss points) never.
A second worker samples the GPU, so the panel also shows memory that other
processes hold before and while training.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static
from textual.worker import get_current_worker

from engine import events as ev
from engine.errors import UserError
from engine.i18n import N_, _
from tui.screens.base import StepScreen
from tui.screens.confirm import ConfirmScreen
from tui.widgets.footer import Footer
from tui.widgets.gpu_panel import GpuPanel
from tui.widgets.log_tail import LogTail
from tui.widgets.loss_chart import LossChart
from tui.widgets.run_progress import RunProgress
from tui.widgets.step_bar import StepBar
from tui.wording import data_words, describe_attempt, duration

if TYPE_CHECKING:
    from engine.plan import Plan

POLL_S = 0.2
GPU_EVERY_S = 1.0
LIVE = ("launching", "starting", "running", "cancelling")
ENDED = {ev.Finished.type: "finished", ev.Cancelled.type: "cancelled"}


def plan_summary(plan: Plan) -> str:
    """The plan as one or two lines: what learns from what, how long, where it goes."""
    t = plan.training
    if t.max_steps:
        length = _("{steps} steps").format(steps=t.max_steps)
    else:
        length = _("{epochs} epochs").format(epochs=t.epochs)
    return _(
        "{model} learns {source}: {length} of {batch} at lr {lr}, LoRA r{rank}, into {folder}"
    ).format(
        model=plan.student.model,
        source=plan.dataset.source,
        length=length,
        batch=f"{t.batch_size}x{t.grad_accum}",
        lr=f"{t.learning_rate:.1e}",
        rank=plan.lora.r,
        folder=f"{plan.output.runs_dir}/{plan.output.name}-…",
    )


class TrainScreen(StepScreen):
    """The plan's summary, the launch and cancel keys, and the live run."""

    STEP = "train"
    BINDINGS = [
        Binding("ctrl+r", "start", N_("Train"), priority=True),
        Binding("ctrl+x", "cancel_run", N_("Cancel run"), priority=True),
        Binding("v", "toggle_view", N_("Log/chart")),
        Binding("w", "toggle_wrap", N_("Wrap")),
    ]

    class Attached(Message):
        """The screen follows ``run_dir`` (launched or found live); ``None``: none is live."""

        def __init__(self, run_dir: Path | None, summary: str = "") -> None:
            super().__init__()
            self.run_dir = run_dir
            self.summary = summary

    class Followed(Message):
        """One event of the followed run, in order."""

        def __init__(self, event: ev.Event) -> None:
            super().__init__()
            self.event = event

        def can_replace(self, message: Message) -> bool:
            """A newer reading of the same GPU makes an unhandled older one moot."""
            old, new = getattr(message, "event", None), self.event
            return (
                isinstance(message, TrainScreen.Followed)
                and isinstance(old, ev.GpuSample)
                and isinstance(new, ev.GpuSample)
                and old.index == new.index
            )

    class GpuRead(Message):
        """This machine's GPUs as NVML sees them now; ``None``: there is no NVIDIA GPU."""

        def __init__(self, samples: list[ev.GpuSample] | None) -> None:
            super().__init__()
            self.samples = samples

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, TrainScreen.GpuRead)

    class CancelSent(Message):
        """The cancel request was written (``True``) or the run had already stopped."""

        def __init__(self, sent: bool) -> None:
            super().__init__()
            self.sent = sent

    def __init__(self) -> None:
        super().__init__()
        self.run_dir: Path | None = None
        self.state = "ready"
        self.last_step: ev.Step | None = None
        self.ending: ev.Event | None = None

    @property
    def live(self) -> bool:
        return self.state in LIVE

    def compose(self) -> ComposeResult:
        yield StepBar(self.STEP)
        with Vertical(id="train"):
            yield Static("", id="plan-summary", markup=False)
            yield Static("", id="state", markup=False)
            yield Static("", id="data-report", markup=False)
            yield Static("", id="problem", markup=False)
            yield RunProgress(id="progress")
            yield GpuPanel(id="gpu")
            yield LossChart(id="chart")
            yield LogTail(id="log")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#problem").display = False
        self.query_one("#data-report").display = False
        self._sample_gpu()

    def on_screen_resume(self) -> None:
        super().on_screen_resume()
        if not self.take_attach_request() and self.run_dir is None and not self.live:
            self._show_state("ready")
            self._follow(self.app.plan, None, launch=False)
        elif isinstance(self.ending, (ev.Finished, ev.Cancelled)):
            self._show_state(self.state)  # an evaluation may have finished since

    def take_attach_request(self) -> bool:
        """Follow the run the app was asked to attach to, if any (Welcome's offer)."""
        request = self.app.take_attach_request()
        if request is not None:
            self.run_dir = request  # now, so a second resume does not look for another
            self._follow(None, request)
        return request is not None

    def show_plan(self) -> None:
        """While a run trains the header is its plan; otherwise what ctrl+r would start (the
        plan may have changed since a run that failed or finished)."""
        if not self.live:
            self.query_one("#plan-summary", Static).update(plan_summary(self.app.plan))

    # Workers: they post, never touch widgets.

    @work(thread=True, exit_on_error=False, exclusive=True, group="run")
    def _follow(self, plan: Plan | None, run_dir: Path | None, launch: bool = True) -> None:
        """Launch ``plan`` (or find its live run, or take ``run_dir``), then tail its events."""
        from engine import runs
        from engine.plan import PlanError, load_plan

        worker = get_current_worker()
        try:
            attempt = None
            if run_dir is None and plan is not None and not launch:
                run_dir = _live_run_of(plan, self.app.runs_dir)
                if run_dir is None:
                    self.post_message(self.Attached(None))
                    return
            elif run_dir is None and plan is not None:
                run_dir = runs.create_run(plan)
                attempt = runs.start(run_dir).attempt
            assert run_dir is not None
            summary = plan_summary(load_plan(run_dir / runs.PLAN_FILE))
        except (OSError, UserError, PlanError) as error:
            hint = getattr(error, "hint", "") or _(
                "Check the runs folder is writable, then ctrl+r."
            )
            self.post_message(self.Followed(ev.Error(kind="launch", message=str(error), hint=hint)))
            return
        self.post_message(self.Attached(run_dir, summary))
        attempt = attempt or runs.current_attempt(run_dir)
        for earlier in runs.history(run_dir, attempt):  # history in the log, not progress
            self.post_message(self.Followed(ev.Log(line=describe_attempt(earlier))))
        following = runs.follow(
            run_dir, attempt=attempt, poll_s=POLL_S, stop=lambda: worker.is_cancelled
        )
        for event in following:
            self.post_message(self.Followed(event))

    @work(thread=True, exit_on_error=False, exclusive=True, group="gpu")
    def _sample_gpu(self) -> None:
        """Read the GPU every second while the screen exists; once if there is none."""
        from engine.gpu import pid_tree
        from engine.runs import read_pid

        worker = get_current_worker()
        while not worker.is_cancelled:
            pid = read_pid(self.run_dir) if self.run_dir else None
            samples = self.app.gpu_sampler(pid_tree(pid) if pid else set())
            self.post_message(self.GpuRead(samples))
            if samples is None:
                return
            time.sleep(GPU_EVERY_S)

    @work(thread=True, exit_on_error=False, exclusive=True, group="cancel")
    def _cancel(self, run_dir: Path) -> None:
        from engine.runs import request_cancel

        self.post_message(self.CancelSent(request_cancel(run_dir)))

    # Handlers: they own the state.

    @on(Attached)
    def _attached(self, message: Attached) -> None:
        if message.run_dir is None:
            self._show_state("ready")
            return
        self.run_dir, self.last_step, self.ending = message.run_dir, None, None
        self.query_one("#plan-summary", Static).update(message.summary)
        self.query_one(LossChart).clear()
        self.query_one(RunProgress).show(None)
        self.query_one(LogTail).clear()
        self.query_one("#data-report").display = False
        self._show_problem(None)
        self._show_state("starting")

    @on(Followed)
    def _followed(self, message: Followed) -> None:
        event = message.event
        if isinstance(event, ev.Step):
            self.last_step = event
            self.query_one(RunProgress).show(event)
            self.query_one(LossChart).add(event.step, event.loss, event.lr, event.max_steps)
            return
        if isinstance(event, ev.GpuSample):
            self.query_one(GpuPanel).show(event)
            return
        self.query_one(LogTail).add(event)
        if isinstance(event, ev.Started):
            self._show_state(
                "running",
                _("with {backend} on {device}").format(backend=event.backend, device=event.device),
            )
        elif isinstance(event, ev.DataReport):
            report = self.query_one("#data-report", Static)
            report.update(data_words(event))
            report.display = True
        elif isinstance(event, ev.Warning):
            self._show_problem(event)
        elif isinstance(event, ev.Error):
            self.ending = event
            self._show_problem(event)
            self._show_state("crashed" if event.kind == "crashed" else "failed")
        elif event.type in ENDED:
            self.ending = event
            self._show_state(ENDED[event.type])

    @on(GpuRead)
    def _gpu_read(self, message: GpuRead) -> None:
        panel = self.query_one(GpuPanel)
        if message.samples is None:
            panel.show_absent()
        elif message.samples:
            panel.show_all(message.samples)  # every card: the panel shows those the run uses

    @on(CancelSent)
    def _cancel_sent(self, message: CancelSent) -> None:
        if message.sent:
            self._show_state("cancelling")
        else:
            self.notify(_("The run had already stopped; nothing to cancel."), severity="warning")

    # What the user sees of the state

    def _show_state(self, state: str, detail: str = "") -> None:
        self.state = state
        name = self.run_dir.name if self.run_dir else ""
        ending = self.ending
        text = {
            "ready": _(
                "Ready. ctrl+r starts training in its own process: quitting the app "
                "or losing SSH leaves it running, and this step re-attaches."
            ),
            "launching": _("Starting the training process…"),
            "starting": _("{run}: loading the model and data…"),
            "running": _("{run}: training {detail}. ctrl+q leaves it running; ctrl+x stops it."),
            "cancelling": _("{run}: stopping at the end of this step and saving its adapter…"),
        }.get(state, "").format(run=name, detail=detail)
        if isinstance(ending, ev.Finished):
            text = _("✓ {run} finished {steps} steps in {time}. Adapter: {adapter}").format(
                run=name,
                steps=ending.steps,
                time=duration(ending.runtime_s),
                adapter=ending.adapter_path,
            )
        elif isinstance(ending, ev.Cancelled):
            text = _("{run} cancelled at step {step}. Adapter saved: {adapter}").format(
                run=name, step=ending.step, adapter=ending.adapter_path
            )
        if isinstance(ending, (ev.Finished, ev.Cancelled)) and self.run_dir:
            text += _evaluated(self.run_dir)
        elif isinstance(ending, ev.Error):
            if state == "crashed":
                text = _("✗ {run} crashed. ctrl+r starts a new run once the cause is fixed.")
            else:
                text = _("✗ {run} failed. ctrl+r starts a new run once the cause is fixed.")
            text = text.format(run=name)
        label = self.query_one("#state", Static)
        label.update(text)
        label.set_class(state in ("failed", "crashed"), "-error")
        self.refresh_bindings()

    def _show_problem(self, event: ev.Warning | ev.Error | None) -> None:
        """Errors and warnings stay on screen with what to do, above the numbers."""
        problem = self.query_one("#problem", Static)
        problem.display = event is not None
        if event is None:
            return
        is_error = isinstance(event, ev.Error)
        title = f"✗ {event.kind}: " if is_error else _("! warning: ")
        problem.update(f"{title}{event.message}" + (f"\n→ {event.hint}" if event.hint else ""))
        problem.set_class(is_error, "-error")
        problem.set_class(not is_error, "-warning")

    # Actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start":
            return not self.live
        if action == "cancel_run":
            return self.state in ("starting", "running")
        return True

    def action_start(self) -> None:
        if self.live:
            return
        self.run_dir, self.ending = None, None
        self._show_problem(None)
        self._show_state("launching")
        self._follow(self.app.plan, None)

    def action_cancel_run(self) -> None:
        run_dir = self.run_dir
        if run_dir is None or self.state not in ("starting", "running"):
            return
        # Steps go on while the question is asked: name no number that will be stale.
        done = (
            _("{steps} steps are done. ").format(steps=self.last_step.step)
            if self.last_step
            else ""
        )
        question = _("Stop {run} at the end of the current step?").format(run=run_dir.name)
        detail = done + _(
            "The adapter of the step it stops at is saved in {folder}/adapter; "
            "`stillroom train --resume {run}` can continue it later."
        ).format(folder=run_dir, run=run_dir.name)

        def answered(yes: bool | None) -> None:
            if yes and self.run_dir == run_dir:
                self._cancel(run_dir)

        self.app.push_screen(ConfirmScreen(question, detail), answered)

    def action_toggle_view(self) -> None:
        """At 80x24 the log gets the chart's rows too (tracebacks, long hints)."""
        self.toggle_class("-log-only")

    def action_toggle_wrap(self) -> None:
        """Log lines wrapped at the width (the default), or whole and scrolled sideways."""
        self.query_one(LogTail).toggle_wrap()


def _evaluated(run_dir: Path) -> str:
    """The run's last evaluation as a sentence after the state, or nothing before one."""
    from engine.evaluate import last_headline

    headline = last_headline(run_dir)
    return "\n" + _("Last evaluation: {headline}.").format(headline=headline) if headline else ""


def _live_run_of(plan: Plan, runs_dir: str) -> Path | None:
    """The newest live run started from a plan with this output name."""
    from engine.runs import LIVE as RUN_LIVE
    from engine.runs import list_runs

    prefix = f"{plan.output.name}-"
    for run in list_runs(runs_dir):
        if run.state in RUN_LIVE and run.name.startswith(prefix):
            return Path(run.path)
    return None
