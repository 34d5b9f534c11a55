"""Child entry: ``python -m engine train RUN_DIR [--probe]`` (and ``chat-serve RUN_DIR``,
see :mod:`engine.chat_serve`).

Started by :func:`engine.runs.start` in its own session with stdout/stderr
going to ``train.log``; events go to ``events.jsonl``. It holds the run
folder's lock (handed over as ``--lock-fd``, or taken here) until it exits, and
numbers its ``started`` event with ``--attempt``. SIGTERM (or a
``cancel`` file in the run directory) stops training at the end of the current
step and saves the adapter. Heavy imports happen after the environment is set,
and Unsloth's before transformers' (see :mod:`engine.train.job`).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

ALLOCATOR_VARS = ("PYTORCH_ALLOC_CONF", "PYTORCH_CUDA_ALLOC_CONF")


def _child_env() -> None:
    """Set the environment before anything touches CUDA.

    Keeps Unsloth's generated code out of the cwd and skips its hub call when
    offline. Turns on torch's expandable segments, as ``import unsloth`` would:
    torch reads the allocator setting once, when CUDA starts, and the child
    starts CUDA (to name the device) before it imports Unsloth. Without them
    the notebook's batching reserved 0.57 GiB over what it allocated on an H100,
    against 0.08 GiB for the notebook itself. A user's own allocator setting
    wins; WSL is left alone, where expandable segments fail (unsloth#3511).
    """
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stillroom"
    os.environ.setdefault("UNSLOTH_COMPILE_LOCATION", str(cache / "unsloth_compiled_cache"))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if any(os.environ.get(k) == "1" for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        os.environ.setdefault("UNSLOTH_DISABLE_STATISTICS", "1")
    wsl = "microsoft" in os.uname().release.lower() or "WSL_DISTRO_NAME" in os.environ
    if not wsl and not any(name in os.environ for name in ALLOCATOR_VARS):
        os.environ["PYTORCH_ALLOC_CONF"] = "expandable_segments:True"
    from engine.cpu_threads import let_idle_threads_sleep

    let_idle_threads_sleep()  # no GPU: torch's idle threads sleep instead of spinning


def _sample_gpu(emit, stop) -> None:
    """GpuSample events every few seconds while training runs, if there is a GPU."""
    import threading

    from engine.gpu import available, pid_tree, sample

    if not available()[0]:
        return

    def loop() -> None:
        while not stop.wait(3.0):
            for event in sample(pid_tree(os.getpid())):  # the ranks too, on several cards
                emit(event)

    threading.Thread(target=loop, name="gpu-sampler", daemon=True).start()


def train(run_dir: Path, probe: bool, attempt: int | None, lock_fd: int | None) -> int:
    import threading

    from engine import run_events, run_lock, runs
    from engine.plan import load_plan

    if lock_fd is not None:
        run_lock.keep(lock_fd)
    elif run_lock.try_lock(run_dir) is None:  # started by hand: take the lock here
        print(f"stillroom: {runs.busy_error(run_dir)}", file=sys.stderr)
        return 3
    attempt = attempt or run_events.next_attempt(runs.read_events(run_dir))
    runs.write_pid(run_dir, os.getpid(), attempt)
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    emit = runs.EventWriter(run_dir)

    def should_stop() -> bool:
        return stop.is_set() or (run_dir / runs.CANCEL_FILE).exists()

    _child_env()
    plan = load_plan(run_dir / runs.PLAN_FILE)
    sampler_stop = threading.Event()
    _sample_gpu(emit, sampler_stop)
    from engine.train.distributed import train as train_plan

    try:
        train_plan(plan, run_dir, emit, should_stop, probe=probe, attempt=attempt)
    finally:
        sampler_stop.set()
    return 0


def prepare(plan_path: Path, run_dir: Path) -> int:
    """Render the plan's dataset into the run directory (see ``prepare_rows_apart``)."""
    from engine import runs
    from engine.hub import student_on_disk
    from engine.plan import load_plan
    from engine.train.dataset import prepare_rows_to_file

    plan = student_on_disk(load_plan(plan_path))  # the trainer fetched it already
    prepare_rows_to_file(plan, run_dir, runs.EventWriter(run_dir))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine")
    sub = parser.add_subparsers(dest="job", required=True)
    train_parser = sub.add_parser("train", help="train the run directory's plan")
    train_parser.add_argument("run_dir", type=Path)
    train_parser.add_argument("--probe", action="store_true")
    train_parser.add_argument("--attempt", type=int, help="this launch's attempt number")
    train_parser.add_argument("--lock-fd", type=int, help="the run's lock, held by the launcher")
    prepare_parser = sub.add_parser("prepare", help="render a plan's dataset for training")
    prepare_parser.add_argument("plan", type=Path)
    prepare_parser.add_argument("run_dir", type=Path)
    chat_parser = sub.add_parser("chat-serve", help="answer JSON chat requests on stdin")
    chat_parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    if args.job == "chat-serve":
        from engine.chat_serve import serve
        from engine.stdout import answers_only

        out = answers_only()
        _child_env()
        return serve(args.run_dir.resolve(), sys.stdin, out)
    if args.job == "prepare":
        return prepare(args.plan, args.run_dir.resolve())
    return train(args.run_dir.resolve(), args.probe, args.attempt, args.lock_fd)


if __name__ == "__main__":
    sys.exit(main())
