"""Resuming a run on another number of processes: ``stillroom train --resume RUN --gpus N``.

A checkpoint holds the whole model and optimizer state on every rank, so a run can go on
with more or fewer ranks; only how each step's samples are shared changes. The new count is
written into the run's own ``plan.toml`` (the record of what the run trains), under the run's
lock, so it is never changed under a trainer. The next attempt's log says the split changed.

Stdlib and engine only at import: the CLI imports this.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from engine import events as ev
from engine.errors import UserError
from engine.i18n import _

Gpus = str | int | list[int]


def parse_gpus(text: str) -> Gpus:
    """``--gpus``'s value as the plan spells it: ``auto``, a count, or ids (``0,1``; one id
    as ``[1]`` or ``1,``)."""
    value = text.strip()
    if value == "auto":
        return value
    try:
        if "," in value or value.startswith("["):
            return [int(part) for part in value.strip("[]").split(",") if part.strip()]
        return int(value)
    except ValueError:
        raise UserError(
            _("--gpus {value} is not a number of GPUs, a list of GPU ids, or auto").format(
                value=text
            ),
            hint=_("For example `--gpus 2`, `--gpus 0,1` or `--gpus auto`."),
        ) from None


def change_gpus(run_dir: Path, gpus: Gpus) -> Gpus | None:
    """Write ``training.gpus = gpus`` into a stopped run's plan; the value it had, or ``None``
    when it already said so. Refused (nothing written) while a trainer holds the run."""
    from engine import runs
    from engine.plan import load_plan, plan_from_dict, save_plan
    from engine.train.distributed import planned_processes, split_batch

    fd = runs._lock_once_ended(run_dir)  # the lock runs.start takes, given up just before it
    if fd is None:
        raise runs.busy_error(run_dir)
    try:
        path = run_dir / runs.PLAN_FILE
        plan = load_plan(path)
        before = plan.training.gpus
        if before == gpus:
            return None
        data = plan.to_dict()
        data["training"]["gpus"] = gpus
        changed = plan_from_dict(data, str(path))
        if gpus != "auto":  # "auto" is counted on the machine, by the trainer
            count = planned_processes(gpus, 0)
            split_batch(plan.training.batch_size, plan.training.grad_accum, count)
        save_plan(changed, path)
        return before
    finally:
        os.close(fd)


def saying_a_new_split(
    emit: Callable[[ev.Event], None], run_dir: Path, processes: int
) -> Callable[[ev.Event], None]:
    """``emit``, plus a log line right after this attempt's ``started`` when the attempt
    before it trained on another number of processes (whoever changed ``training.gpus``)."""
    before = previous_processes(run_dir)
    if before is None or before == processes:
        return emit

    def emit_and_say(event: ev.Event) -> None:
        emit(event)
        if isinstance(event, ev.Started):
            line = _(
                "the split changed: this attempt trains on {after} process(es), the last one "
                "trained on {before}; each step still takes the plan's samples "
                "(batch_size x grad_accum), shared anew"
            ).format(after=processes, before=before)
            emit(ev.Log(line=line))

    return emit_and_say


def previous_processes(run_dir: Path) -> int | None:
    """How many processes the run's last attempt trained on (``None`` before the first)."""
    from engine import run_events

    for attempt in reversed(run_events.attempts(run_events.load(run_dir).events)):
        if attempt.started is not None:
            return attempt.started.processes or 1
    return None
