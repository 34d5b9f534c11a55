"""One training run, start to end: ``run(plan, run_dir, emit, should_stop)``.

Synchronous and UI-free. Every way out ends with exactly one terminal event:
``finished``, ``cancelled`` or ``error`` (with a hint). The data is loaded,
rendered and checked before the model loads, so a dataset problem costs
seconds, not a model load.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from engine import events as ev
from engine.errors import UserError
from engine.fileio import atomic_write_text
from engine.hub import student_on_disk
from engine.i18n import _
from engine.plan import Plan
from engine.runs import ADAPTER_DIR, LOG_FILE, PLAN_FILE
from engine.train.checkpoints import SaveFailed
from engine.train.dataset import (
    TrainRows,
    describe,
    prepare_rows,
    prepare_rows_apart,
    save_eval_split,
)

Emit = Callable[[ev.Event], None]
PROBE_STEPS = 5


def run(
    plan: Plan,
    run_dir: Path,
    emit: Emit,
    should_stop: Callable[[], bool],
    *,
    probe: bool = False,
    attempt: int = 1,
) -> None:
    """Train ``plan`` into ``run_dir`` (resuming from its newest whole checkpoint, if any).

    ``attempt`` numbers this launch of the run (1, then one more per resume).
    """
    started = time.time()
    stage = "plan"
    try:
        from engine.train.backend_choice import choose_backend

        backend, reason = choose_backend(plan)
        emit(started_event(plan, backend, reason, _device_name(), probe=probe, attempt=attempt))
        stage = "student"
        for line in _student_source(plan):
            emit(ev.Log(line=line))
        plan = student_on_disk(plan)
        stage = "dataset"
        if backend == "unsloth":
            data = prepare_rows_apart(run_dir / PLAN_FILE, run_dir, run_dir / LOG_FILE, emit)
            import unsloth  # noqa: F401 - first, before transformers, trl and peft
        else:
            data = prepare_rows(plan, emit)
        if not probe:
            save_eval_split(run_dir, data.eval_conversations)
        stage = "setup"
        setup = _setup(plan, backend, data, probe)
        for line in describe(plan, setup, data):
            emit(ev.Log(line=line))
        for line in (setup.checkpointing_reason, _order_line(setup), _pad_line(setup)):
            if line:
                emit(ev.Log(line=line))
        stage = "train"
        _train(plan, setup, data, run_dir, emit, should_stop, started, probe, attempt)
    except Exception as error:  # noqa: BLE001 - every failure must end in an event
        emit(error_event(error, plan, stage))


def started_event(
    plan: Plan,
    backend: str,
    reason: str,
    device: str,
    *,
    probe: bool,
    attempt: int,
    processes: int = 1,
) -> ev.Started:
    """The attempt's first event (the multi-process launcher sends the same one, with the
    processes it starts, which a resume reads back)."""
    return ev.Started(
        job="probe" if probe else "train",
        backend=backend,
        backend_reason=reason,
        device=device,
        model=plan.student.model,
        versions=_versions(),
        plan_hash=plan.fingerprint(),
        max_steps=plan.training.max_steps,
        pid=_pid(),
        attempt=attempt,
        processes=processes,
    )


def opening_the_attempt(emit: Emit, plan: Plan, *, probe: bool, attempt: int) -> Emit:
    """``emit``, with the attempt's ``started`` sent first where an ending would come before it.

    Followers read an attempt from its ``started`` on: a plan refused before the backend was
    chosen (``training.gpus`` naming GPUs on a CPU box, the unsloth backend without CUDA) would
    otherwise end no attempt, and its follower would report a crash instead of the message.
    """
    opened = False

    def send(event: ev.Event) -> None:
        nonlocal opened
        if isinstance(event, ev.Started):
            opened = True
        elif not opened and event.type in ev.TERMINAL:
            opening = started_event(plan, "", "", "", probe=probe, attempt=attempt)
            send(replace(opening, t=event.t))  # no later than the ending it opens
        emit(event)

    return send


def error_event(error: BaseException, plan: Plan, stage: str) -> ev.Error:
    """The ending a failure at ``stage`` gets: the user's mistake with its hint, a failed
    save, out of memory, or an unexpected exception with its traceback."""
    if isinstance(error, SaveFailed):
        return error.event()
    if isinstance(error, UserError):
        return ev.Error(
            kind=stage if stage in ("student", "dataset") else "plan",
            message=error.message,
            hint=error.hint,
        )
    if _is_oom(error):
        return _oom_error(plan, error)
    return ev.Error(
        kind="exception",
        message=f"{type(error).__name__}: {error}",
        hint=_("This looks like a bug or an environment problem; train.log has the details."),
        log_tail="".join(traceback.format_exception(error))[-4000:],
    )


def _student_source(plan: Plan) -> list[str]:
    """Where the student loads from, checked before any data or model work."""
    from engine.hub import locate_model

    source = locate_model(plan.student.model, source=plan.student.source)
    return [_("student model {model}: {detail}").format(model=source.model, detail=source.detail)]


def _is_oom(error: BaseException) -> bool:
    """torch's OutOfMemoryError, or the plain RuntimeError some kernels raise instead."""
    return type(error).__name__ == "OutOfMemoryError" or "CUDA out of memory" in str(error)


def _pid() -> int:
    import os

    return os.getpid()


def auto_batching(backend: str, rebatch: bool) -> str:
    """What ``batching = "auto"`` means for this backend.

    With ``rebatch = false`` on Unsloth it is padding-free, because that is what the
    notebook gets: Unsloth's SFTTrainer turns padding-free on for the notebook's
    config by itself (and passes each sample's length so none attends across).
    Padding-free is also why the notebook's peak memory is low; padded 2 x 4 batches
    reserved 1.24x its memory on an H100. Everything else trains padded micro-batches.
    """
    return "padding_free" if backend == "unsloth" and not rebatch else "padded"


def _setup(plan: Plan, backend: str, data: TrainRows, probe: bool, processes: int = 1):
    """Everything decided before the model loads; with ``processes`` > 1 the micro-batch and
    accumulation are each rank's, so that all ranks together take the plan's samples a step."""
    import torch

    from engine.train.backends import Setup, precision_for
    from engine.train.memory import (
        choose_batching,
        choose_checkpointing,
        default_checkpointing,
        with_change,
    )
    from engine.train.throughput import overhead_bound

    cuda = torch.cuda.is_available()
    t = plan.training
    batching = t.batching if t.batching != "auto" else auto_batching(backend, t.rebatch)
    if batching != "padded" and backend != "unsloth":
        raise UserError(
            _("training.batching = {batching!r} needs the unsloth backend").format(
                batching=batching
            ),
            hint=_(
                "Without a FlashAttention-style kernel packed samples attend to each other; use "
                "batching = 'padded' (the default)."
            ),
        )
    micro, accum = t.batch_size, t.grad_accum
    checkpointing, reason = default_checkpointing(backend), ""
    if cuda:
        total_mb = gpu_memory_mb()
        if t.rebatch:
            micro, accum = choose_batching(
                plan, total_mb, data.lengths, backend=backend, batching=batching
            )
        checkpointing, reason = choose_checkpointing(
            with_change(plan, "training.batch_size", micro),
            total_mb,
            data.lengths,
            backend=backend,
            batching=batching,
        )
    if processes > 1:
        from engine.train.distributed import split_batch

        micro, accum = split_batch(micro, accum, processes)
    samples = t.batch_size * t.grad_accum
    max_steps = t.max_steps or max(1, math.ceil(len(data.rows) * (t.epochs or 1) / samples))
    optimizer = t.optimizer
    if not cuda and "8bit" in optimizer:
        optimizer = "adamw_torch"  # bitsandbytes' 8-bit optimisers need CUDA
    elif cuda and t.rebatch and optimizer == "adamw_8bit" and overhead_bound(_device_name()):
        # The same AdamW update with full-precision states in one fused kernel: 392 LoRA
        # tensors cost the 8-bit optimiser ~50 ms a step in launches on an H200 (docs/gpu.md).
        optimizer = "adamw_torch_fused"
    return Setup(
        backend=backend,
        device="cuda" if cuda else "cpu",
        precision=precision_for(plan, cuda),
        optimizer=optimizer,
        micro_batch=micro,
        grad_accum=accum,
        processes=processes,
        max_steps=min(max_steps, PROBE_STEPS) if probe else max_steps,
        planned_steps=max_steps,
        batching=batching,
        # Length grouping saves padding where arithmetic bounds the step; on cards whose
        # steps are bound by kernel launches it buys nothing (measured), so the rows keep
        # the notebook's random order there. rebatch = false keeps the notebook's order.
        group_by_length=t.rebatch and not (cuda and overhead_bound(_device_name())),
        save=not probe,
        checkpointing=checkpointing,
        checkpointing_reason=reason,
        pad_multiple=choose_pad_multiple(backend, batching, t.rebatch, cuda and _device_name()),
    )


def _order_line(setup) -> str:
    """The run log's word on the order rows are seen in, when Stillroom changes it."""
    if setup.group_by_length and setup.batching == "padded" and setup.micro_batch > 1:
        return _(
            "rows are length-grouped: similar lengths share a micro-batch (less padding), "
            "so the order differs from plain random sampling"
        )
    return ""


def _pad_line(setup) -> str:
    """The run log's word on padding beyond the longest row of a micro-batch."""
    if not setup.pad_multiple:
        return ""
    return _(
        "micro-batches are padded to a multiple of {tokens} tokens: fewer "
        "batch shapes for torch.compile to recompile for (padding tokens carry no loss)"
    ).format(tokens=setup.pad_multiple)


MEMORY_CAP_ENV = "STILLROOM_GPU_MEMORY_GB"
PAD_ENV = "STILLROOM_PAD_MULTIPLE"
PAD_MULTIPLE = 64


def choose_pad_multiple(backend: str, batching: str, rebatch: bool, card: str | bool) -> int | None:
    """Pad Unsloth's padded micro-batches to a multiple of 64 tokens on launch-bound cards.

    Every new batch length can make torch.compile recompile mid-run; multiples of 64
    leave 15 shapes where the bench's 40 steps met 40. On an H200 that made steps 1.09x
    faster for ~2 % more memory (docs/gpu.md); where arithmetic bounds the step, the
    extra padding would cost, so those cards keep exact lengths. ``rebatch = false``
    keeps the notebook's batches. ``$STILLROOM_PAD_MULTIPLE`` overrides it (0: off).
    """
    from engine.train.throughput import overhead_bound

    if backend != "unsloth" or batching != "padded":
        return None
    chosen = pad_multiple_override()
    if chosen is None:
        chosen = PAD_MULTIPLE if rebatch and card and overhead_bound(str(card)) else 0
    return chosen or None


def pad_multiple_override() -> int | None:
    """``$STILLROOM_PAD_MULTIPLE`` as a number of tokens (0 turns padding to a multiple off)."""
    import os

    value = os.environ.get(PAD_ENV, "")
    if not value:
        return None
    if not value.isdigit():
        raise UserError(
            _("{variable}={value!r} is not a whole number of tokens").format(
                variable=PAD_ENV, value=value
            ),
            hint=_("Set it to e.g. {variable}=64 (0 turns it off), or unset it.").format(
                variable=PAD_ENV
            ),
        )
    return int(value)


def gpu_memory_mb() -> float:
    """The card's memory, or less where ``STILLROOM_GPU_MEMORY_GB`` caps it.

    The cap is enforced (torch refuses to allocate past it) as well as planned
    for: it shares a big card fairly, and the GPU bench emulates a 15 GB T4 with it.
    """
    import os

    import torch

    device = torch.cuda.current_device()  # each rank's own card
    total = torch.cuda.get_device_properties(device).total_memory / 2**20
    cap = os.environ.get(MEMORY_CAP_ENV)
    if not cap:
        return total
    try:
        cap_mb = float(cap) * 1024
    except ValueError:
        raise UserError(
            _("{MEMORY_CAP_ENV}={cap!r} is not a number of gigabytes").format(
                MEMORY_CAP_ENV=MEMORY_CAP_ENV, cap=cap
            ),
            hint=_(
                "Set it to the GPU memory this run may use, e.g. {MEMORY_CAP_ENV}=15, or unset it."
            ).format(MEMORY_CAP_ENV=MEMORY_CAP_ENV),
        ) from None
    if cap_mb < total:
        torch.cuda.set_per_process_memory_fraction(cap_mb / total, device)
    return min(cap_mb, total)


def _train(
    plan,
    setup,
    data,
    run_dir: Path,
    emit,
    should_stop,
    started: float,
    probe: bool,
    attempt: int,
    ranks=None,
):
    """Train and end the attempt; ``ranks`` (:class:`engine.train.distributed.Ranks`) when this
    is one of several processes: all agree on each step's stop and save, only rank 0 writes."""
    import torch

    from engine.train import cpu_pin, overhead
    from engine.train.backends import build_trainer, trainable_parameters
    from engine.train.callbacks import CountingCollator, RunCallback
    from engine.train.checkpoints import (
        load_schedule_only,
        prepare_resume,
        resume_optimizer,
        saved_optimizer,
    )

    resume = None if probe else prepare_resume(run_dir)
    keep_states, resume_line = True, ""
    if resume:
        optimizer, keep_states, resume_line = resume_optimizer(
            saved_optimizer(resume[1]), setup.optimizer, setup.device == "cuda"
        )
        setup = replace(setup, optimizer=optimizer)
    if resume:
        emit(ev.Log(line=_("resuming from the checkpoint of step {step}").format(step=resume[0])))
    for event in [ev.Log(line=resume_line)] if resume_line else _optimizer_notice(plan, setup):
        emit(event)
    trainer, tokenizer = build_trainer(plan, setup, data.rows, run_dir)
    if not keep_states:
        load_schedule_only(trainer)
    trainable, total = trainable_parameters(trainer.model)
    line = _("LoRA trains {trainable} parameters ({share} % of {total} as stored)").format(
        trainable=f"{trainable:,}", share=f"{100 * trainable / total:.2f}", total=f"{total:,}"
    )
    emit(ev.Log(line=line))
    counter = CountingCollator(trainer.data_collator)
    meter = overhead.OverheadMeter()
    trainer.data_collator = meter.wrap_collator(counter)
    flops = _flops_meter(plan, setup)
    callback = RunCallback(
        flops.wrap(emit), counter, should_stop, None if probe else plan.training.save_minutes * 60
    )
    trainer.add_callback(meter.wrap_callback(callback))
    if ranks is not None:
        trainer.add_callback(meter.wrap_callback(ranks.agreement(callback, counter), "agreement"))
        ranks.say_when_balanced(trainer, emit)
    rank = None if ranks is None else ranks.rank
    profile = overhead.profiler_callback(setup.max_steps, rank) if setup.device == "cuda" else None
    for aid in (profile, overhead.phase_callback(rank)):
        if aid is not None:
            trainer.add_callback(aid)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        card = torch.cuda.current_device() if setup.device == "cuda" else 0
        with cpu_pin.pinned(setup.device, card, emit, processes=setup.processes):
            result = trainer.train(resume_from_checkpoint=str(resume[1]) if resume else None)
    except Exception as error:
        if callback.saving is not None:
            raise SaveFailed(run_dir, callback.saving, error) from error
        raise
    step = trainer.state.global_step
    step_s = _median(list(callback.step_times)[1:] or list(callback.step_times))
    if setup.device == "cuda":
        overhead.nvml_cost(meter, step, step_s)
        overhead.sampler_cost(meter, trainer)
    costs = meter.report(step, step_s)
    emit(ev.Log(line=overhead.describe(costs)))
    if ranks is not None and not ranks.main:
        return  # rank 0 writes the summary, the adapter and the ending
    summary = {
        "attempt": attempt,
        "state": {"done": "finished", "stopped": "cancelled", "nan": "failed"}[callback.outcome],
        "backend": setup.backend,
        "steps": step,
        "max_steps": setup.max_steps,
        "planned_steps": setup.planned_steps,
        "micro_batch": setup.micro_batch,
        "grad_accum": setup.grad_accum,
        "batching": setup.batching,
        "optimizer": setup.optimizer,
        "trainable_params": trainable,
        "train_loss": callback.losses[-1] if callback.losses else None,
        "runtime_s": round(time.time() - started, 1),
        "step_s_median": step_s,
        "tokens_trained": counter.tokens,
        "checkpointing": setup.checkpointing,
        "largest_batch_tokens": meter.largest_batch_tokens,
        "batch_lengths": sorted({shape[-1] for shape in meter.batch_shapes}),
        "pad_multiple": setup.pad_multiple,
        "overhead": costs,
        "params": flops.params,
        "peak_tflops": flops.peak,
        "trace": callback.trace,
        "peak_reserved_mb": torch.cuda.max_memory_reserved() / 2**20
        if torch.cuda.is_available()
        else None,
        "peak_allocated_mb": torch.cuda.max_memory_allocated() / 2**20
        if torch.cuda.is_available()
        else None,
    }
    if callback.outcome == "nan":
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
        last = prepare_resume(run_dir)
        message = (
            _(
                "the loss became NaN or infinite at step {step}; training stopped (the "
                "checkpoint of step {last} is the last good state)"
            ).format(step=step, last=last[0])
            if last
            else _(
                "the loss became NaN or infinite at step {step}; training stopped (no "
                "checkpoint was saved)"
            ).format(step=step)
        )
        emit(
            ev.Error(
                kind="nan_loss",
                message=message,
                hint=_(
                    "Lower training.learning_rate (e.g. halve it), check the data for empty or "
                    "garbled answers, or use student.dtype = 'bfloat16' instead of float16."
                ),
            )
        )
        return
    adapter = "" if probe else str(save_adapter(trainer.model, tokenizer, run_dir))
    summary["adapter_path"] = adapter
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
    if callback.outcome == "stopped":
        emit(ev.Cancelled(step=step, adapter_path=adapter))
    else:
        emit(
            ev.Finished(
                adapter_path=adapter,
                train_loss=summary["train_loss"]
                if summary["train_loss"] is not None
                else getattr(result, "training_loss", None),
                runtime_s=summary["runtime_s"],
                steps=step,
            )
        )


def _optimizer_notice(plan: Plan, setup) -> list[ev.Event]:
    """The run log's word when the optimizer that trains is not the plan's."""
    if setup.optimizer == "adamw_torch_fused" != plan.training.optimizer:
        return [
            ev.Log(
                line=_(
                    "optimizer: {optimizer} runs as fused AdamW with full-precision states "
                    "(adamw_torch_fused), the same update with faster steps on this card; "
                    "rebatch = false keeps the notebook's 8-bit states"
                ).format(optimizer=plan.training.optimizer)
            )
        ]
    if setup.optimizer != plan.training.optimizer:
        return [
            ev.Warning(
                message=_("{optimizer} needs CUDA: training with {used}").format(
                    optimizer=plan.training.optimizer, used=setup.optimizer
                ),
                hint=_("8-bit optimisers come from bitsandbytes, which runs on NVIDIA GPUs only."),
            )
        ]
    return []


def save_adapter(model, tokenizer, run_dir: Path) -> Path:
    """Write the LoRA adapter and its tokenizer whole, then swap it in."""
    final = run_dir / ADAPTER_DIR
    partial = run_dir / f"{ADAPTER_DIR}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(str(partial))
    tokenizer.save_pretrained(str(partial))
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    return final


def _oom_error(plan: Plan, error: BaseException) -> ev.Error:
    t, s, lora = plan.training, plan.student, plan.lora
    estimate = ""
    try:
        import torch

        from engine.train.memory import estimate as estimate_memory

        total = (
            torch.cuda.get_device_properties(0).total_memory / 2**20
            if torch.cuda.is_available()
            else None
        )
        estimate = estimate_memory(plan, gpu_total_mb=total).summary()
    except Exception:  # noqa: BLE001 - the estimate only decorates the message
        estimate = ""
    message = (
        _("CUDA ran out of GPU memory (estimate: {estimate})").format(estimate=estimate)
        if estimate
        else _("CUDA ran out of GPU memory")
    )
    hint = _(
        "Try, one at a time: training.batch_size = {batch_size} with grad_accum = {grad_accum} "
        "(same samples per step); student.max_seq_length = {max_seq_length}; lora.r = {r}. "
        "Close other programs using the GPU (`stillroom doctor` lists them). The last "
        "checkpoint is intact: `stillroom train --resume RUN`."
    ).format(
        batch_size=max(1, t.batch_size // 2),
        grad_accum=t.grad_accum * 2,
        max_seq_length=max(256, s.max_seq_length // 2),
        r=max(4, lora.r // 2),
    )
    return ev.Error(
        kind="oom",
        message=message,
        hint=hint,
        log_tail=str(error)[-2000:],
    )


class _FlopsMeter:
    """Adds model FLOPs utilisation to ``step`` events, where the card's peak is known."""

    def __init__(self, params: int, peak: float | None):
        self.params, self.peak = params, peak

    def wrap(self, emit: Emit) -> Emit:
        from engine.train.throughput import mfu

        def emit_with_mfu(event: ev.Event) -> None:
            if isinstance(event, ev.Step) and self.peak:
                event = replace(event, mfu=mfu(self.params, event.tokens_per_s, self.peak))
            emit(event)

        return emit_with_mfu


def _flops_meter(plan: Plan, setup) -> _FlopsMeter:
    """The student's full parameter count (4-bit weights counted whole) and the card's peak."""
    from engine.train.memory import resolve_arch
    from engine.train.throughput import peak_tflops

    try:
        params = resolve_arch(plan.student.model)[0].params()
    except UserError:
        return _FlopsMeter(0, None)
    peak = peak_tflops(_device_name()) if setup.device == "cuda" else None
    return _FlopsMeter(params, peak)


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[len(ordered) // 2], 4)


def _device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0]}
    for name in ("torch", "transformers", "trl", "peft", "accelerate", "bitsandbytes", "unsloth"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found
