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
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine import events as ev
from engine.data.inspect import Checked, check_source
from engine.data.problems import Tally, report, tally
from engine.data.types import Conversation
from engine.errors import UserError
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
            f"{d.source}: cannot tell which columns hold the conversation",
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
            f"{d.source}: no usable conversations ({counts.words()})",
            f"See `stillroom inspect {d.source}` for what is wrong.",
        )
    if counts.share > d.max_unusable_share:
        raise UserError(
            f"{d.source}: {counts.unusable:,} of {counts.records:,} rows ({counts.share:.0%}) "
            f"are unusable, more than dataset.max_unusable_share = {d.max_unusable_share:g} "
            f"allows ({counts.kinds()})",
            f"See which rows and why: `stillroom inspect {d.source}`. Fix or delete them; if "
            "the columns were read wrongly, map them (--map, or dataset.mapping in the plan); "
            f"or raise dataset.max_unusable_share to train on the {counts.usable:,} usable rows.",
        )


def held_out_count(rows: int, fraction: float) -> int:
    """Rows held out for eval: ``fraction`` of them, rounded down, never all of them."""
    return max(min(int(rows * fraction), rows - 1), 0)


def _split(conversations: list[Conversation], fraction: float, seed: int):
    """A seeded, reproducible eval hold-out; never the whole set."""
    n_eval = held_out_count(len(conversations), fraction)
    if n_eval <= 0:
        return conversations, []
    order = list(range(len(conversations)))
    random.Random(seed).shuffle(order)
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
        action = "dropped" if report.policy == "drop" else "truncated"
        emit(
            ev.Warning(
                message=f"{report.too_long} row(s) exceed max_seq_length="
                f"{report.max_seq_length} tokens and were {action}",
                hint="Raise student.max_seq_length if the GPU has room.",
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


def prepare_rows_apart(plan_path: Path, run_dir: Path, log: Path) -> TrainRows:
    """:func:`prepare_rows` in a separate process, for the unsloth backend.

    Rendering needs transformers' tokenizer, and Unsloth must be imported before
    transformers to patch it fully (and, imported first, it changed how the same
    rendering came out on an H100). Rendering apart keeps this process free of
    transformers until Unsloth is in. Warnings reach ``events.jsonl`` directly.
    """
    out = run_dir / ROWS_FILE
    out.unlink(missing_ok=True)
    with open(log, "a", encoding="utf-8") as handle:
        done = subprocess.run(
            [sys.executable, "-m", "engine", "prepare", str(plan_path), str(run_dir)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(f"rendering the dataset failed (exit {done.returncode}); see {log}")
    with open(out, "rb") as handle:
        result = pickle.load(handle)
    out.unlink()
    if isinstance(result, tuple):  # (message, hint) of the user's mistake
        raise UserError(*result)
    return result


def prepare_rows_to_file(plan: Plan, run_dir: Path, emit) -> None:
    """The other side of :func:`prepare_rows_apart`: rows, or the user's mistake, pickled."""
    try:
        result: TrainRows | tuple[str, str] = prepare_rows(plan, emit)
    except UserError as error:
        result = (error.message, error.hint)
    with open(run_dir / ROWS_FILE, "wb") as handle:
        pickle.dump(result, handle, protocol=pickle.HIGHEST_PROTOCOL)


def describe(plan: Plan, setup, data: TrainRows) -> list[str]:
    """What the run will do, in plain words, before any step is taken."""
    t = plan.training
    samples = setup.micro_batch * setup.grad_accum
    seen = setup.max_steps * samples
    n = len(data.rows)
    epochs = seen / n if n else 0.0
    covers = (
        f"sees {min(seen, n):,} of {n:,} training rows"
        if seen < n
        else f"covers the {n:,} training rows {epochs:.1f} times"
    )
    lines = [
        f"max_steps={setup.max_steps} x {samples} samples per step {covers} "
        f"({epochs:.2f} epochs; {data.eval_rows:,} rows held out for eval)",
        f"batches: {setup.micro_batch} x {setup.grad_accum} (micro-batch x grad-accum), "
        f"{setup.batching}, {setup.precision}, {setup.optimizer} on {setup.device} via {setup.backend}",
    ]
    if setup.save:
        every = f"every {t.save_steps} steps and every {t.save_minutes:g} min"
        lines.append(
            f"checkpoints {every} (two kept); after a crash `stillroom train --resume RUN` "
            "continues from the newest; a cancel saves the adapter of the step it stopped at"
        )
    if not math.isfinite(epochs) or epochs > 20:
        lines.append("that is many passes over a small set: expect the student to memorise it")
    return lines
