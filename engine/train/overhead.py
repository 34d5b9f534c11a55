"""What Stillroom's own per-step work costs, and a profile of a steady-state step.

Stillroom adds work around every optimiser step: counting tokens in the
collator, the callback that writes ``step`` events and checks for cancel and
checkpoints, the NVML sampler thread and the sampler that orders the rows.
:class:`OverheadMeter` times each of them inside the real run, so the run log
can say what share of a step they cost (the target is under 2 %).

Setting ``STILLROOM_PROFILE=DIR`` makes the run profile two optimiser steps
after ``STILLROOM_PROFILE_STEP`` (default: the run's last two) with
``torch.profiler`` and write the trace and a summary to DIR: a bench aid.
``STILLROOM_PHASES=DIR`` splits every step's host time into its parts (the
micro-batches, the optimizer, the step's end, the gap to the next step) and
writes their means to DIR, so one rank's step can be set beside a lone card's.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.i18n import _

PROFILE_ENV = "STILLROOM_PROFILE"
PROFILE_STEP_ENV = "STILLROOM_PROFILE_STEP"
PHASES_ENV = "STILLROOM_PHASES"
PHASES_FROM_STEP = 11  # the benches' steady state
NVML_PERIOD_S = 3.0  # engine/__main__.py samples the GPU this often
# The ranks' agreement at a step's end is where the faster rank waits for the slower one's
# micro-batches (docs/gpu.md, "Where a rank's step goes"): not Stillroom's own work.
WAITS = frozenset({"agreement"})


class OverheadMeter:
    """Seconds spent in wrapped callables, by part."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.largest_batch_tokens = 0
        self.batch_shapes: set[tuple[int, ...]] = set()  # each new one may cost a recompile

    def timed(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[part] += time.perf_counter() - start
                self.calls[part] += 1

        return wrapper

    def wrap_callback(self, callback: Any, part: str = "callbacks") -> Any:
        """Time every ``on_*`` hook the callback itself defines (instance attributes win)."""
        for name in dir(type(callback)):
            if name.startswith("on_") and name in type(callback).__dict__:
                setattr(callback, name, self.timed(part, getattr(callback, name)))
        return callback

    def wrap_collator(self, collator: Any) -> Any:
        """The collator, timed, remembering the largest micro-batch (padding included)."""
        return _TimedCollator(collator, self)

    def time_once(self, part: str, fn: Callable[[], Any], *, scale: float = 1.0) -> None:
        """One timed call of ``fn``, counted ``scale`` times (work done every few steps)."""
        start = time.perf_counter()
        fn()
        self.seconds[part] += (time.perf_counter() - start) * scale

    def report(self, steps: int, step_s: float | None) -> dict[str, float | None]:
        """Milliseconds per optimiser step by part, their total, and its share of a step; a
        part that mostly waits for the other ranks (:data:`WAITS`) is shown, not counted."""
        per_step = {f"{part}_ms": 1000 * s / max(steps, 1) for part, s in self.seconds.items()}
        total = sum(v for k, v in per_step.items() if k.removesuffix("_ms") not in WAITS)
        found = {k: round(v, 3) for k, v in sorted(per_step.items())}
        found["total_ms"] = round(total, 3)
        found["step_ms"] = round(1000 * step_s, 1) if step_s else None
        found["share"] = round(total / (1000 * step_s), 5) if step_s else None
        return found


class _TimedCollator:
    """Forwards attribute reads to the collator it wraps, as trainers expect."""

    def __init__(self, inner: Any, meter: OverheadMeter):
        self.inner = inner
        self.meter = meter
        self._call = meter.timed("collator", inner)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self._call(features)
        ids = batch.get("input_ids")
        if ids is not None:
            self.meter.largest_batch_tokens = max(self.meter.largest_batch_tokens, ids.numel())
            self.meter.batch_shapes.add(tuple(ids.shape))
        return batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def describe(report: dict[str, float | None]) -> str:
    """The run log's line about the meter."""
    parts = ", ".join(
        f"{k.removesuffix('_ms')} {v:.2f}"
        for k, v in report.items()
        if k.endswith("_ms")
        and k not in ("total_ms", "step_ms")
        and k.removesuffix("_ms") not in WAITS
        and v is not None
    )
    share, total = report.get("share"), f"{report['total_ms']:.2f}"
    if not share:
        line = _("Stillroom's own work per step: {total} ms: {parts} (ms)").format(
            total=total, parts=parts
        )
    else:
        line = _(
            "Stillroom's own work per step: {total} ms ({share} % of a {step} ms step): "
            "{parts} (ms)"
        ).format(
            total=total, share=f"{100 * share:.2f}", step=f"{report['step_ms']:.0f}", parts=parts
        )
    wait = report.get("agreement_ms")
    if wait is None:
        return line
    said = _(
        "The ranks' agreement at each step's end, mostly a wait for the slowest rank, took "
        "{wait} ms a step."
    ).format(wait=f"{wait:.2f}")
    return f"{line} {said}"


def nvml_cost(meter: OverheadMeter, steps: int, step_s: float | None) -> None:
    """Time one NVML sample as the sampler thread takes it, spread over the steps it covers."""
    from engine.gpu import available, sample

    if not step_s or not available()[0]:
        return
    samples = steps * step_s / NVML_PERIOD_S
    meter.time_once("nvml", lambda: sample(frozenset({os.getpid()})), scale=samples)


def sampler_cost(meter: OverheadMeter, trainer: Any) -> None:
    """Time drawing a whole epoch's order from the trainer's sampler."""
    try:
        sampler = trainer._get_train_sampler(trainer.train_dataset)
    except TypeError:  # transformers before the dataset argument
        sampler = trainer._get_train_sampler()
    if sampler is not None:
        meter.time_once("sampler", lambda: list(iter(sampler)))


def _bench_folder(env: str, rank: int | None) -> Path | None:
    """The folder a bench aid writes to (``rank-N`` inside it for ``rank`` of several)."""
    folder = os.environ.get(env)
    if not folder:
        return None
    return Path(folder) / f"rank-{rank}" if rank is not None else Path(folder)


def phase_callback(rank: int | None = None):
    """A callback splitting each step's host time into parts, written to
    ``$STILLROOM_PHASES/phases.json`` when training ends; None when unset.

    The clock is the host's, with no CUDA synchronisation added: a launch-bound step is the
    host's time, and the first sync of a step (the loss read for logging, the ranks'
    agreement) takes whatever the GPU still had to do."""
    folder = _bench_folder(PHASES_ENV, rank)
    if folder is None:
        return None
    from transformers import TrainerCallback

    class Phases(TrainerCallback):
        def __init__(self) -> None:
            self.sums: dict[str, float] = defaultdict(float)
            self.counts: dict[str, int] = defaultdict(int)
            self.last: tuple[str, float] | None = None  # the latest mark and its time
            self.step = 0  # the step the time since the latest mark belongs to

        def mark(self, name: str) -> None:
            now = time.perf_counter()
            if self.last is not None and self.step >= PHASES_FROM_STEP:
                part = f"{self.last[0]}->{name}"
                self.sums[part] += now - self.last[1]
                self.counts[part] += 1
            self.last = (name, now)

        def on_step_begin(self, args, state, control, **kwargs):
            self.mark("begin")  # the gap since the last step's end is that step's
            self.step = state.global_step + 1

        def on_substep_end(self, args, state, control, **kwargs):
            self.mark("micro")

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            self.mark("last_micro")

        def on_optimizer_step(self, args, state, control, **kwargs):
            self.mark("optimizer")

        def on_step_end(self, args, state, control, **kwargs):
            self.mark("step_end")

        def on_train_end(self, args, state, control, **kwargs):
            folder.mkdir(parents=True, exist_ok=True)
            steps = self.counts.get("optimizer->step_end", 0)
            parts = {
                part: {
                    "ms": round(1000 * self.sums[part] / n, 3),
                    "per_step": round(n / max(steps, 1), 2),
                }
                for part, n in self.counts.items()
            }
            step_ms = round(1000 * sum(self.sums.values()) / steps, 2) if steps else None
            found = {"from_step": PHASES_FROM_STEP, "steps": steps, "parts": parts}
            (folder / "phases.json").write_text(json.dumps({**found, "step_ms": step_ms}, indent=1))

    return Phases()


def profiler_callback(max_steps: int, rank: int | None = None):
    """A callback profiling two steps into ``$STILLROOM_PROFILE`` (``rank-N`` inside it for
    ``rank`` of several), or None when unset."""
    folder = _bench_folder(PROFILE_ENV, rank)
    if folder is None:
        return None
    from transformers import TrainerCallback

    first = int(os.environ.get(PROFILE_STEP_ENV) or max(1, max_steps - 1))

    class Profile(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step + 1 == first:
                import torch

                torch.cuda.synchronize()
                self.profile = torch.profiler.profile(
                    activities=[
                        torch.profiler.ProfilerActivity.CPU,
                        torch.profiler.ProfilerActivity.CUDA,
                    ]
                )
                self.profile.__enter__()
                self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == first + 1 and hasattr(self, "profile"):
                import torch

                torch.cuda.synchronize()
                wall = time.perf_counter() - self.started
                self.profile.__exit__(None, None, None)
                write_profile(self.profile, wall, 2, folder)

    return Profile()


def write_profile(profile: Any, wall_s: float, steps: int, folder: Path) -> dict[str, Any]:
    """A gzipped chrome trace and ``profile.json``: GPU busy share, top kernels and CPU ops."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "trace.json"
    profile.export_chrome_trace(str(raw))
    with open(raw, "rb") as source, gzip.open(folder / "trace.json.gz", "wb") as target:
        target.write(source.read())
    raw.unlink()
    averages = profile.key_averages()

    def device_us(item: Any) -> float:
        return float(getattr(item, "self_device_time_total", 0) or 0)

    # Kernel and copy events only: an operator's device time repeats its kernels'.
    kernels = sorted(
        (k for k in averages if str(k.device_type).endswith("CUDA")), key=device_us, reverse=True
    )
    busy_ms = sum(device_us(k) for k in kernels) / 1000
    cpu = sorted(
        (k for k in averages if str(k.device_type).endswith("CPU")),
        key=lambda k: k.self_cpu_time_total,
        reverse=True,
    )
    summary = {
        "steps": steps,
        "wall_ms_per_step": round(1000 * wall_s / steps, 2),
        "gpu_kernel_ms_per_step": round(busy_ms / steps, 2),
        "gpu_busy": round(busy_ms / (1000 * wall_s), 4),
        "top_device": [
            [k.key[:90], round(device_us(k) / 1000 / steps, 3), k.count // steps]
            for k in kernels[:25]
        ],
        "top_cpu_self": [
            [k.key[:90], round(k.self_cpu_time_total / 1000 / steps, 3), k.count // steps]
            for k in cpu[:20]
        ],
    }
    (folder / "profile.json").write_text(json.dumps(summary, indent=1))
    return summary
