"""How run events read in words: one wording for the CLI follower and the wizard alike.

``stillroom train``/``attach`` print these lines above their live panel; the
wizard's Train step shows the same lines in its log. Neither front end imports
the other: both import this.
"""

from __future__ import annotations

from rich.markup import escape

from engine import events as ev
from engine.data.problems import Tally
from engine.i18n import _
from engine.run_events import Attempt


def state_name(state: str) -> str:
    """A run's state (``engine.runs.STATES``) as a reader sees it; the JSON keeps the word."""
    names = {
        "starting": _("starting"),
        "running": _("running"),
        "finished": _("finished"),
        "failed": _("failed"),
        "cancelled": _("cancelled"),
        "crashed": _("crashed"),
        "unreadable": _("unreadable"),
    }
    return names.get(state, state)


def money(value: float | None) -> str:
    """A cost in dollars, or that the price is unknown and which plan keys set it."""
    if value is None:
        return _("unknown (set price_input_per_mtok / price_output_per_mtok)")
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def progress_words(event: ev.Progress) -> str:
    """A stage's progress in items: ``recall: answered 3/6, about 0:40 to go``."""
    stage, done, total = event.stage or event.job, event.done, event.total
    if done < total:
        return _("{stage}: answered {done}/{total}, about {time} to go").format(
            stage=stage, done=done, total=total, time=duration(event.eta_s)
        )
    return _("{stage}: answered {done}/{total}").format(stage=stage, done=done, total=total)


def data_words(event: ev.DataReport) -> str:
    """The data report as ``stillroom inspect`` words its counts."""
    words = Tally(event.records, event.usable, event.unusable, event.problems).words()
    return _("data: {counts}").format(counts=words)


def describe(event: ev.Event) -> str | None:
    """The line printed above the live panel for events worth keeping in scrollback."""
    if isinstance(event, ev.DataReport):
        return escape(data_words(event))
    if isinstance(event, ev.Log):
        return escape(event.line)
    if isinstance(event, ev.Warning):
        label = "[yellow]" + _("warning:") + "[/]"
        if event.hint:
            return _("{label} {message} ({hint})").format(
                label=label, message=escape(event.message), hint=escape(event.hint)
            )
        return f"{label} {escape(event.message)}"
    if isinstance(event, ev.Checkpoint):
        return _("checkpoint at step {step}").format(step=event.step)
    if isinstance(event, ev.Finished):
        done = _("[green]finished[/] {steps} steps in {time}").format(
            steps=event.steps, time=duration(event.runtime_s)
        )
        if event.adapter_path:
            return _("{finished}; adapter: {path}").format(finished=done, path=event.adapter_path)
        return done
    if isinstance(event, ev.Cancelled):
        return _("[yellow]cancelled[/] at step {step}; adapter of that step: {path}").format(
            step=event.step, path=event.adapter_path
        )
    if isinstance(event, ev.Error):
        text = _("[red]error ({kind}):[/] {message}").format(
            kind=event.kind, message=escape(event.message)
        )
        if event.hint:
            text += "\n  " + _("hint: {hint}").format(hint=escape(event.hint))
        if event.kind in ("crashed", "exception") and event.log_tail:
            text += "\n  " + _("last lines of train.log:") + "\n" + escape(event.log_tail[-1500:])
        return text
    return None


def describe_attempt(attempt: Attempt) -> str:
    """An earlier attempt in one line of history: how far it got and how it ended."""
    step, ending = attempt.last_step, attempt.ending
    if step is None:
        reached = _("ran no step")
    elif step.loss is None:
        reached = _("reached step {step}/{total}").format(step=step.step, total=step.max_steps)
    else:
        reached = _("reached step {step}/{total}, loss {loss}").format(
            step=step.step, total=step.max_steps, loss=f"{step.loss:.4f}"
        )
    if isinstance(ending, ev.Error):
        how = (
            _("failed ({kind})").format(kind=ending.kind)
            if ending.kind != "crashed"
            else _("crashed")
        )
    elif ending is not None:
        how = state_name(ending.type)
    else:
        how = _("stopped without an ending (killed or crashed)")
    return _("attempt {number} (history): {reached}; {how}").format(
        number=attempt.number, reached=reached, how=how
    )
