"""A stand-in trainer: a recorded run's events written into a run directory at a set pace.

Screens that follow a run are tested (and benchmarked) without training: a
:class:`Replay` makes the run directory look like a live run (a sleeping child
process owns the pid file), appends events to ``events.jsonl`` as the trainer
would, and honours a cancel request by writing ``cancelled`` like the real
child does. ``alive=False`` gives a run whose process is gone, i.e. crashed.

    python -m tests.tui.replayer RUN_DIR --rate 100   # endless feed, for the latency bench
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from engine import events as ev
from engine import runs
from engine.plan import Plan, save_plan

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC: recorded runs never show the test's clock
RUN_NAME = "qwen-distill-20260101-000000"
MAX_STEPS = 60
H100_MB = 81559.0


def gpu_sample(step: int, *, t: float = T0) -> ev.GpuSample:
    """An H100 shared with a notebook: the trainer (own) and someone else's kernel."""
    own = 18000.0 + 40.0 * min(step, 10)
    return ev.GpuSample(
        index=0,
        name="NVIDIA H100 80GB HBM3",
        mem_used_mb=own + 6200.0 + 520.0,
        mem_total_mb=H100_MB,
        util_pct=96.0,
        temp_c=63.0,
        power_w=412.0,
        processes=(
            ev.GpuProcess(pid=4242, mem_used_mb=own, name="python", own=True),
            ev.GpuProcess(pid=1717, mem_used_mb=6200.0, name="jupyter-kernel", own=False),
        ),
        t=t,
    )


def step_event(step: int, max_steps: int = MAX_STEPS, *, t: float = T0) -> ev.Step:
    """A falling loss with a little wobble, linear lr decay after 5 warm-up steps."""
    lr = 2e-4 * (step / 5 if step <= 5 else (max_steps - step) / (max_steps - 5))
    loss = 0.6 + 1.8 * math.exp(-step / 12) + 0.05 * math.sin(step * 1.7)
    return ev.Step(step=step, max_steps=max_steps, epoch=step * 8 / 480, loss=round(loss, 4),
                   lr=lr, grad_norm=0.9 / (1 + step / 20), tokens_per_s=5120.0 + step,
                   samples_per_s=8.0, eta_s=(max_steps - step) * 1.6, mem_allocated_mb=16000.0,
                   mem_reserved_mb=18000.0, t=t)  # fmt: skip


def recorded_run(
    steps: int = 36, max_steps: int = MAX_STEPS, *, ending: bool = False
) -> list[ev.Event]:
    """A run's events up to ``steps`` (GPU reading every step, checkpoints every 20)."""
    found: list[ev.Event] = [
        ev.Started(job="train", backend="unsloth", backend_reason="CUDA and Unsloth found",
                   device="NVIDIA H100 80GB HBM3", max_steps=max_steps, pid=4242, t=T0),
        ev.Log(line=f"max_steps={max_steps} x 8 samples per step sees 480 of 51,760 training rows", t=T0),
        ev.Log(line="LoRA trains 18,464,768 of 1,562,179,072 parameters (1.18%)", t=T0),
    ]  # fmt: skip
    for step in range(1, steps + 1):
        t = T0 + 10 + step * 1.6
        found += [step_event(step, max_steps, t=t), gpu_sample(step, t=t)]
        if step % 20 == 0:
            found.append(ev.Checkpoint(step=step, path=f"checkpoints/step-{step}", t=t))
    if ending:
        found.append(ev.Finished(adapter_path=f"runs/{RUN_NAME}/adapter", train_loss=0.61,
                                 runtime_s=steps * 1.6 + 10, steps=steps, t=T0 + 200))  # fmt: skip
    return found


def make_run_dir(root: Path, plan: Plan | None = None, name: str = RUN_NAME) -> Path:
    """A run directory under ``root`` holding ``plan`` (default plan if none), no events yet."""
    run_dir = Path(root) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    save_plan(plan or Plan(), run_dir / runs.PLAN_FILE)
    return run_dir


_STAND_IN_CHILD = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
)


class Replay:
    """Write ``events`` into ``run_dir`` one every ``pace_s``, as a live (or dead) trainer."""

    def __init__(self, run_dir: Path, events: Iterable[ev.Event], *, pace_s: float = 0.0,
                 alive: bool = True, log: str = "") -> None:  # fmt: skip
        self.run_dir = Path(run_dir)
        self.events = iter(events)
        self.pace_s = pace_s
        self.alive = alive
        self.log = log
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._child: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Replay:
        (self.run_dir / runs.LOG_FILE).write_text(self.log)
        # Like the real child, it outlives the SIGTERM of a cancel until ``cancelled`` is written.
        self._child = subprocess.Popen([sys.executable, "-c", _STAND_IN_CHILD])
        if not self.alive:  # a pid that existed and is gone: the trainer died
            self._child.kill()
            self._child.wait()
        runs.write_pid(self.run_dir, self._child.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._child and self._child.poll() is None:
            self._child.kill()
            self._child.wait()

    def wait_written(self, count: int, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.written < count and self._thread.is_alive():
            assert time.monotonic() < deadline, "the replay fell behind"
            time.sleep(0.01)

    def _feed(self) -> None:
        write = runs.EventWriter(self.run_dir)
        last_step = 0
        for event in self.events:
            if self._stop.is_set() or self._cancel_requested(write, last_step):
                return
            write(event)
            self.written += 1
            if isinstance(event, ev.Step):
                last_step = event.step
            if self.pace_s:
                time.sleep(self.pace_s)
        while not self._stop.wait(0.02):  # out of events: idle like a slow step
            if self._cancel_requested(write, last_step):
                return

    def _cancel_requested(self, write: runs.EventWriter, step: int) -> bool:
        """The real child saves the adapter and writes ``cancelled``; so does the replay."""
        if not (self.run_dir / runs.CANCEL_FILE).exists():
            return False
        write(ev.Cancelled(step=step, adapter_path=str(self.run_dir / "adapter")))
        if self._child:
            self._child.kill()  # the real child exits once its adapter is saved
        return True


def endless(rate_per_s: float) -> Iterator[ev.Event]:
    """Steps, GPU readings and log lines in turn, for as long as they are read."""
    yield recorded_run(0)[0]
    for step in itertools.count(1):
        t = time.time()
        yield step_event(step, max_steps=100_000, t=t)
        yield gpu_sample(step, t=t)
        yield ev.Log(line=f"step {step}: {rate_per_s:.0f} events/s from the replay", t=t)


def main() -> None:
    parser = argparse.ArgumentParser(description="feed a run directory endlessly")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--rate", type=float, default=100.0, help="events per second")
    args = parser.parse_args()
    write = runs.EventWriter(args.run_dir)
    parent = os.getppid()
    start = time.perf_counter()
    for n, event in enumerate(endless(args.rate)):
        write(event)
        delay = start + (n + 1) / args.rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        if not args.run_dir.exists() or os.getppid() != parent:  # the bench is gone
            sys.exit(0)


if __name__ == "__main__":
    main()
