"""How run events read in words: one wording for the CLI follower and the wizard alike.

``stillroom train``/``attach`` print these lines above their live panel; the
wizard's Train step shows the same lines in its log. Neither front end imports
the other: both import this.
"""

from __future__ import annotations

from rich.markup import escape

from engine import events as ev
from engine.data.problems import Tally
from engine.run_events import Attempt


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def progress_words(event: ev.Progress) -> str:
    """A stage's progress in items: ``recall: answered 3/6, about 0:40 to go``."""
    eta = f", about {duration(event.eta_s)} to go" if event.done < event.total else ""
    return f"{event.stage or event.job}: answered {event.done}/{event.total}{eta}"


def data_words(event: ev.DataReport) -> str:
    """The data report as ``stillroom inspect`` words its counts."""
    return "data: " + Tally(event.records, event.usable, event.unusable, event.problems).words()


def describe(event: ev.Event) -> str | None:
    """The line printed above the live panel for events worth keeping in scrollback."""
    if isinstance(event, ev.DataReport):
        return escape(data_words(event))
    if isinstance(event, ev.Log):
        return escape(event.line)
    if isinstance(event, ev.Warning):
        hint = f" ({escape(event.hint)})" if event.hint else ""
        return f"[yellow]warning:[/] {escape(event.message)}{hint}"
    if isinstance(event, ev.Checkpoint):
        return f"checkpoint at step {event.step}"
    if isinstance(event, ev.Finished):
        adapter = f"; adapter: {event.adapter_path}" if event.adapter_path else ""
        return f"[green]finished[/] {event.steps} steps in {duration(event.runtime_s)}{adapter}"
    if isinstance(event, ev.Cancelled):
        return (
            f"[yellow]cancelled[/] at step {event.step}; adapter of that step: {event.adapter_path}"
        )
    if isinstance(event, ev.Error):
        text = f"[red]error ({event.kind}):[/] {escape(event.message)}"
        if event.hint:
            text += f"\n  hint: {escape(event.hint)}"
        if event.kind in ("crashed", "exception") and event.log_tail:
            text += "\n  last lines of train.log:\n" + escape(event.log_tail[-1500:])
        return text
    return None


def describe_attempt(attempt: Attempt) -> str:
    """An earlier attempt in one line of history: how far it got and how it ended."""
    step, ending = attempt.last_step, attempt.ending
    reached = f"reached step {step.step}/{step.max_steps}" if step else "ran no step"
    loss = f", loss {step.loss:.4f}" if step and step.loss is not None else ""
    if isinstance(ending, ev.Error):
        how = f"failed ({ending.kind})" if ending.kind != "crashed" else "crashed"
    elif ending is not None:
        how = ending.type
    else:
        how = "stopped without an ending (killed or crashed)"
    return f"attempt {attempt.number} (history): {reached}{loss}; {how}"
