"""From the plan's dataset to the tokenized rows both backends train on.

Load, detect, normalise and drop broken rows (the same code ``stillroom inspect``
runs), render with the student's own chat template (loss on assistant tokens
only), report what is usable as a ``data`` event, refuse when too much is not,
run the preflight gates, then hold out the eval share. All of it runs before the
model loads, so a data problem is reported in seconds as a ``dataset`` error.
"""

from __future__ import annotations

import json
import math
import pickle
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine import events as ev
from engine.data.inspect import Checked, check_source
from engine.data.problems import Tally, report, tally
from engine.data.types import Conversation
from engine.errors import UserError
from engine.i18n import _
from engine.plan import Plan

if TYPE_CHECKING:
    from engine.data.render import OverflowReport, RenderedSet


@dataclass
class TrainRows:
    """Tokenized training rows plus the counts the plain-words summary needs."""

    rows: list[dict[str, list[int]]]  # input_ids, labels (-100 = no loss)
    source_rows: int
    eval_rows: int
    eval_conversations: list[Conversation]

    @property
    def lengths(self) -> list[int]:
        return [len(r["input_ids"]) for r in self.rows]


def prepare_rows(plan: Plan, emit) -> TrainRows:
    """Read and render the plan's dataset; raise :class:`UserError` on anything unusable.

    The ``data`` event is emitted once: before the tokenizer loads when the rows
    already fail the unusable share, else after rendering, with too-long rows counted.
    """
    d = plan.dataset
    checked = check_source(
        d.source,
        split=d.split,
        format=d.format,
        mapping=d.mapping or None,
        drop_duplicates=d.drop_duplicates,
    )
    if checked.detection.format == "unknown":
        raise UserError(
            _("{source}: cannot tell which columns hold the conversation").format(source=d.source),
            checked.detection.evidence,
        )
    before = tally(checked.records, [c.row for c in checked.usable], checked.flagged)
    if before.share > d.max_unusable_share or not checked.usable:
        _report(plan, checked, before, emit)
        _refuse(plan, before)  # before any tokenizer loads
    rendered = _render(plan, checked.usable)
    kept = {row.row: row for row in rendered.rows}
    survivors = [c for c in checked.usable if c.row in kept]
    checked.flagged["too_long"] = rendered.too_long_rows(checked.usable)
    after = tally(checked.records, list(kept), checked.flagged)
    _report(plan, checked, after, emit)
    _warn_too_long(rendered.overflow, emit)
    if rendered.gate:
        raise rendered.gate
    _refuse(plan, after)
    train, held_out = _split(survivors, d.eval_fraction, plan.training.seed)
    rows = [kept[c.row] for c in train] + _replay_rows(
        plan, len(train), len(checked.table.rows), emit
    )
    return TrainRows(
        [{"input_ids": list(r.input_ids), "labels": r.labels} for r in rows],
        len(checked.table.rows),
        len(held_out),
        held_out,
    )


def _replay_rows(plan: Plan, train_rows: int, source_rows: int, emit) -> list:
    """The base model's own answers to general prompts, rendered like the user's rows (see
    :mod:`engine.replay`); never held out, so eval scores only the user's data."""
    from engine.replay import replay_conversations

    conversations = replay_conversations(plan, train_rows, source_rows + 1, emit)
    return _render(plan, conversations).rows if conversations else []


def _report(plan: Plan, checked: Checked, counts: Tally, emit) -> None:
    """The ``data`` event, then a warning per problem that says what to do about it."""
    d = plan.dataset
    emit(
        ev.DataReport(
            source=d.source,
            records=counts.records,
            usable=counts.usable,
            unusable=counts.unusable,
            problems=counts.problems,
            max_unusable_share=d.max_unusable_share,
        )
    )
    for problem in report({k: v for k, v in checked.flagged.items() if k != "too_long"}):
        emit(ev.Warning(message=problem.message))


def _refuse(plan: Plan, counts: Tally) -> None:
    """Raise when nothing is usable, or more than the plan's share is not."""
    d = plan.dataset
    if not counts.usable:
        raise UserError(
            _("{source}: no usable conversations ({words})").format(
                source=d.source, words=counts.words()
            ),
            _("See `stillroom inspect {source}` for what is wrong.").format(source=d.source),
        )
    if counts.share > d.max_unusable_share:
        raise UserError(
            _(
                "{source}: {unusable:,} of {records:,} rows ({share:.0%}) are unusable, more than "
                "dataset.max_unusable_share = {max_unusable_share:g} allows ({kinds})"
            ).format(
                source=d.source,
                unusable=counts.unusable,
                records=counts.records,
                share=counts.share,
                max_unusable_share=d.max_unusable_share,
                kinds=counts.kinds(),
            ),
            _(
                "See which rows and why: `stillroom inspect {source}`. Fix or delete them; if the "
                "columns were read wrongly, map them (--map, or dataset.mapping in the plan); or "
                "raise dataset.max_unusable_share to train on the {usable:,} usable rows."
            ).format(source=d.source, usable=counts.usable),
        )


def held_out_count(rows: int, fraction: float) -> int:
    """Rows held out for eval: ``fraction`` of them, rounded down, never all of them."""
    return max(min(int(rows * fraction), rows - 1), 0)


def _split(conversations: list[Conversation], fraction: float, seed: int):
    """A seeded, reproducible eval hold-out; never the whole set.

    Rows marked ``held_out`` (by ``generate --docs``) are held out first, so eval
    asks questions the student never trained on about documents it did learn from.
    """
    marked = [i for i, c in enumerate(conversations) if c.held_out]
    wanted = max(held_out_count(len(conversations), fraction), len(marked)) if fraction > 0 else 0
    n_eval = min(wanted, len(conversations) - 1)
    if n_eval <= 0:
        return conversations, []
    order = list(range(len(conversations)))
    random.Random(seed).shuffle(order)
    first = set(marked)
    order = marked + [i for i in order if i not in first]
    held = set(order[:n_eval])
    return (
        [c for i, c in enumerate(conversations) if i not in held],
        [c for i, c in enumerate(conversations) if i in held],
    )


def _render(plan: Plan, conversations: list[Conversation]) -> RenderedSet:
    """Every usable conversation rendered once; gates are left in the result for later."""
    from engine.data.render import load_tokenizer, render_conversations

    return render_conversations(
        conversations,
        load_tokenizer(plan.student.model),
        max_seq_length=plan.student.max_seq_length,
        overflow=plan.dataset.overflow,
        train_on_reasoning=plan.teacher.train_on_reasoning,
        raise_gates=False,
    )


def _warn_too_long(report: OverflowReport, emit) -> None:
    """What the overflow policy did to rows over max_seq_length, with the fix."""
    if report.too_long:
        message = (
            _("{too_long} row(s) exceed max_seq_length={max_seq_length} tokens and were dropped")
            if report.policy == "drop"
            else _(
                "{too_long} row(s) exceed max_seq_length={max_seq_length} tokens and were truncated"
            )
        )
        emit(
            ev.Warning(
                message=message.format(
                    too_long=report.too_long, max_seq_length=report.max_seq_length
                ),
                hint=_("Raise student.max_seq_length if the GPU has room."),
            )
        )


ROWS_FILE = "rows.pkl"
EVAL_FILE = "eval_split.jsonl"


def save_eval_split(run_dir: Path, conversations: list[Conversation]) -> None:
    """The held-out conversations, kept in the run so eval uses exactly what training never saw."""
    from engine.fileio import atomic_write_text

    lines = [
        json.dumps({"row": c.row, "messages": c.messages, "reasoning": c.reasoning})
        for c in conversations
    ]
    atomic_write_text(Path(run_dir) / EVAL_FILE, "".join(line + "\n" for line in lines))


def load_eval_split(run_dir: Path) -> list[Conversation] | None:
    """What :func:`save_eval_split` kept, or ``None`` for a run trained before it existed."""
    from engine.fileio import read_jsonl

    path = Path(run_dir) / EVAL_FILE
    if not path.is_file():
        return None
    return [Conversation(r["messages"], r["row"], r.get("reasoning")) for r in read_jsonl(path)]


def prepare_rows_apart(plan_path: Path, run_dir: Path, log: Path, emit) -> TrainRows:
    """:func:`prepare_rows` in a separate process (``python -m engine prepare``), for unsloth.

    Rendering needs transformers' tokenizer, and Unsloth must be imported before
    transformers to patch it fully (and, imported first, it changed how the same
    rendering came out on an H100). Rendering apart keeps this process free of
    transformers until Unsloth is in. The child's events (the data report,
    warnings) are passed on to ``emit``; its ``error`` comes back as the user's
    mistake (:class:`UserError`) or a failure; the rows come in a file.
    """
    from engine import spawn

    out = run_dir / ROWS_FILE
    out.unlink(missing_ok=True)
    child = spawn.start_piped("prepare", [str(plan_path), str(run_dir)], log=log)
    for event in spawn.read_pipe(child, log):
        if isinstance(event, ev.Error):
            if event.kind == "user":
                raise UserError(event.message, hint=event.hint)
            raise RuntimeError(f"rendering the dataset failed: {event.message} (see {log})")
        if event.type not in ev.TERMINAL:
            emit(event)
    with open(out, "rb") as handle:
        rows = pickle.load(handle)
    out.unlink()
    return rows


def prepare_rows_to_file(plan: Plan, run_dir: Path, emit) -> None:
    """The other side of :func:`prepare_rows_apart`: the rows, for the parent to load."""
    rows = prepare_rows(plan, emit)
    with open(run_dir / ROWS_FILE, "wb") as handle:
        pickle.dump(rows, handle, protocol=pickle.HIGHEST_PROTOCOL)


def describe(plan: Plan, setup, data: TrainRows) -> list[str]:
    """What the run will do, in plain words, before any step is taken."""
    t = plan.training
    processes = setup.processes
    samples = setup.micro_batch * setup.grad_accum * processes
    seen = setup.max_steps * samples
    n = len(data.rows)
    epochs = seen / n if n else 0.0
    if seen < n:
        schedule = _(
            "max_steps={steps} x {samples} samples per step sees {seen} of {rows} training rows "
            "({epochs} epochs; {held_out} rows held out for eval)"
        )
    else:
        schedule = _(
            "max_steps={steps} x {samples} samples per step covers the {rows} training rows "
            "{times} times ({epochs} epochs; {held_out} rows held out for eval)"
        )
    shape = dict(micro=setup.micro_batch, accum=setup.grad_accum, batching=setup.batching,
                 precision=setup.precision, optimizer=setup.optimizer, device=setup.device,
                 backend=setup.backend)  # fmt: skip
    batches = (
        _(
            "batches: {micro} x {accum} (micro-batch x grad-accum) x {processes} processes, "
            "{batching}, {precision}, {optimizer} on {device} via {backend}"
        ).format(processes=processes, **shape)
        if processes > 1
        else _(
            "batches: {micro} x {accum} (micro-batch x grad-accum), "
            "{batching}, {precision}, {optimizer} on {device} via {backend}"
        ).format(**shape)
    )
    lines = [
        schedule.format(
            steps=setup.max_steps,
            samples=samples,
            seen=f"{min(seen, n):,}",
            rows=f"{n:,}",
            times=f"{epochs:.1f}",
            epochs=f"{epochs:.2f}",
            held_out=f"{data.eval_rows:,}",
        ),
        batches,
    ]
    if setup.save:
        lines.append(
            _(
                "checkpoints every {steps} steps and every {minutes} min (two kept); after a "
                "crash `stillroom train --resume RUN` continues from the newest; a cancel saves "
                "the adapter of the step it stopped at"
            ).format(steps=t.save_steps, minutes=f"{t.save_minutes:g}")
        )
    if not math.isfinite(epochs) or epochs > 20:
        lines.append(_("that is many passes over a small set: expect the student to memorise it"))
    return lines
