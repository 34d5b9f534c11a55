"""Trainer callbacks that turn training into events, and stop it cleanly.

Used by both backends (the Unsloth-patched TRL trainer is a transformers
``Trainer`` too), so metrics, cancel, checkpoint markers, wall-time saves and
NaN detection behave the same everywhere.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from engine import events as ev
from engine.train.checkpoints import mark_complete

Emit = Callable[[ev.Event], None]


class CountingCollator:
    """Wraps a collator and counts the real (non-padding) tokens and rows it sees."""

    def __init__(self, inner: Callable[[list[dict[str, Any]]], dict[str, Any]]):
        self.inner = inner
        self.tokens = 0
        self.rows = 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        self.tokens += sum(len(f["input_ids"]) for f in features)
        self.rows += sum(len(f["seq_lengths"]) if "seq_lengths" in f else 1 for f in features)
        return self.inner(features)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _memory_mb() -> tuple[float | None, float | None]:
    if not torch.cuda.is_available():
        return None, None
    return torch.cuda.memory_allocated() / 2**20, torch.cuda.memory_reserved() / 2**20


class RunCallback(TrainerCallback):
    """Emits ``step`` and ``checkpoint`` events; honours cancel, wall-time saves and NaN.

    After ``train()`` returns, ``outcome`` says why it ended: ``"done"``,
    ``"stopped"`` (cancel) or ``"nan"``. ``saving`` is the step whose checkpoint
    is being written (from the step's end until ``on_save``), so a failure that
    escapes ``train()`` then is known to be the save's.
    """

    def __init__(
        self,
        emit: Emit,
        counter: CountingCollator,
        should_stop: Callable[[], bool],
        save_seconds: float | None,
    ):
        self.emit = emit
        self.counter = counter
        self.should_stop = should_stop
        self.save_seconds = save_seconds
        self.outcome = "done"
        self.saving: int | None = None
        self.losses: list[float] = []
        self.trace: list[tuple[int, float, int]] = []  # (step, seconds, tokens) for summaries
        self.step_times: deque[float] = deque(maxlen=10)
        # (time, tokens, rows) at recent logs: rates over a window, because the
        # dataloader collates ahead of the step that consumes the batch.
        self._marks: deque[tuple[float, int, int]] = deque(maxlen=11)

    def on_train_begin(self, args, state, control, **kwargs):
        now = time.monotonic()
        self._last_step = self._last_save = now
        self._marks.append((now, self.counter.tokens, self.counter.rows))

    def on_step_end(self, args, state, control, **kwargs):
        now = time.monotonic()
        self.step_times.append(now - self._last_step)
        self._last_step = now
        if self.save_seconds and now - self._last_save >= self.save_seconds:
            control.should_save = True
        if self.should_stop():
            self.outcome = "stopped"
            control.should_training_stop = True
        self.saving = state.global_step if control.should_save else None

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs:
            return
        loss = float(logs["loss"])
        self._marks.append((time.monotonic(), self.counter.tokens, self.counter.rows))
        self.trace.append((state.global_step, round(self._marks[-1][0], 4), self.counter.tokens))
        (t0, tokens0, rows0), (t1, tokens1, rows1) = self._marks[0], self._marks[-1]
        elapsed = max(t1 - t0, 1e-9)
        tokens, rows = tokens1 - tokens0, rows1 - rows0
        step_s = sum(self.step_times) / len(self.step_times) if self.step_times else None
        allocated, reserved = _memory_mb()
        self.emit(
            ev.Step(
                step=state.global_step,
                max_steps=state.max_steps,
                epoch=round(float(state.epoch or 0.0), 4),
                loss=loss,
                lr=_float(logs.get("learning_rate")),
                grad_norm=_float(logs.get("grad_norm")),
                tokens_per_s=round(tokens / elapsed, 1),
                samples_per_s=round(rows / elapsed, 2),
                eta_s=round(step_s * (state.max_steps - state.global_step), 1) if step_s else None,
                mem_allocated_mb=allocated,
                mem_reserved_mb=reserved,
            )
        )
        if not math.isfinite(loss):
            self.outcome = "nan"
            control.should_training_stop = True
            control.should_save = False
        else:
            self.losses.append(loss)

    def on_save(self, args, state, control, **kwargs):
        self.saving = None
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir() and state.is_world_process_zero:  # the rank that wrote it, once done
            mark_complete(folder, state.global_step, getattr(args.optim, "value", args.optim))
            self.emit(ev.Checkpoint(step=state.global_step, path=str(folder)))
        self._last_save = time.monotonic()


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class RankAgreement(TrainerCallback):
    """Keeps DDP ranks in step: at each step's end one all-reduce of stop (a cancel seen by any
    rank), save (wall time on any rank) and the tokens and rows collated since, so every rank
    stops and saves at the same step and rank 0's rates count all ranks. Added after the
    :class:`RunCallback` whose decisions it merges (see :mod:`engine.train.distributed`)."""

    def __init__(self, run_callback: RunCallback, counter: CountingCollator, device: str):
        self.run_callback, self.counter, self.device = run_callback, counter, device
        self._tokens = self._rows = 0  # the counter's values after the last merge

    def on_step_end(self, args, state, control, **kwargs):
        import torch.distributed as dist

        local = torch.tensor(
            [
                float(self.run_callback.outcome == "stopped"),
                float(control.should_save),
                float(self.counter.tokens - self._tokens),
                float(self.counter.rows - self._rows),
            ],
            dtype=torch.float64,
            device=self.device,
        )
        dist.all_reduce(local)
        stop, save, tokens, rows = local.tolist()
        if stop:
            self.run_callback.outcome = "stopped"
            control.should_training_stop = True
        if save:
            control.should_save = True
            self.run_callback.saving = state.global_step
        self.counter.tokens = self._tokens = self._tokens + int(tokens)
        self.counter.rows = self._rows = self._rows + int(rows)
