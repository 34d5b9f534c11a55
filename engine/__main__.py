"""Child entry: ``python -m engine JOB ...``, the one way a long job runs apart.

Jobs: ``train RUN_DIR [--probe]``, ``prepare PLAN RUN_DIR`` (training's dataset,
rendered apart), ``chat-serve RUN_DIR`` (see :mod:`engine.chat_serve`), ``eval
RUN``, ``export RUN`` and ``generate [--plan PLAN] [flags]`` (the teacher's answers; the
key only ever in its environment). :mod:`engine.spawn` starts them; every one reports
through :mod:`engine.events`: training into ``events.jsonl`` (it holds the run
folder's lock, handed over as ``--lock-fd`` or taken here, numbers its
``started`` event with ``--attempt``, and a SIGTERM or a ``cancel`` file in the
run directory stops it at the end of the current step with the adapter saved),
the others on stdout, which carries events only: library chatter goes to stderr.
Each non-training job ends with ``finished`` or an ``error`` whose hint says
what to do (generation also with ``cancelled``: stopped, or at its budget). Heavy imports happen after the environment is set, and Unsloth's
before transformers' (see :mod:`engine.train.job`).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from engine import events as ev
from engine.errors import UserError
from engine.i18n import _
from engine.teacher.options import add_teacher_arguments

Emit = Callable[[ev.Event], None]

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
    from engine.gpu import available, pid_tree, sample

    if not available()[0]:
        return

    def loop() -> None:
        while not stop.wait(3.0):
            for event in sample(pid_tree(os.getpid())):  # the ranks too, on several cards
                emit(event)

    threading.Thread(target=loop, name="gpu-sampler", daemon=True).start()


def train(run_dir: Path, probe: bool, attempt: int | None, lock_fd: int | None) -> int:
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

    def should_stop() -> bool:
        return stop.is_set() or (run_dir / runs.CANCEL_FILE).exists()

    _child_env()
    plan = load_plan(run_dir / runs.PLAN_FILE)
    from engine.train.distributed import keep_to_one_card
    from engine.train.distributed import train as train_plan

    keep_to_one_card(plan.training.gpus)
    from engine.train.job import opening_the_attempt

    emit = opening_the_attempt(runs.EventWriter(run_dir), plan, probe=probe, attempt=attempt)
    sampler_stop = threading.Event()
    _sample_gpu(emit, sampler_stop)

    try:
        train_plan(plan, run_dir, emit, should_stop, probe=probe, attempt=attempt)
    finally:
        sampler_stop.set()
    return 0


def prepare(plan_path: Path, run_dir: Path, emit: Emit) -> int:
    """Render the plan's dataset into the run directory (see ``prepare_rows_apart``)."""
    from engine.hub import student_on_disk
    from engine.plan import load_plan
    from engine.train.dataset import prepare_rows_to_file

    plan = student_on_disk(load_plan(plan_path))  # the trainer fetched it already
    prepare_rows_to_file(plan, run_dir, emit)
    return 0


def eval_job(args: argparse.Namespace, emit: Emit) -> int:
    """``stillroom eval``'s work, with ``progress`` events and the report's paths at the end."""
    from engine.chat import keep_to_the_runs_card, resolve_run
    from engine.evaluate import evaluate, headline, progress_events
    from engine.run_dir import RunDir

    run = RunDir(resolve_run(args.run, args.runs_dir))
    keep_to_the_runs_card(run.path)
    emit(ev.Started(job="eval", pid=os.getpid(), model=run.plan().student.model))
    report = evaluate(
        run.path,
        n=args.n,
        everything=args.everything,
        max_new_tokens=args.max_new_tokens,
        judge=args.judge,
        retention=args.retention,
        progress=progress_events(emit, "eval"),
    )
    paths = {"report": run.eval_dir / "report.json", "markdown": run.eval_dir / "report.md"}
    emit(ev.Result(job="eval", paths={k: str(v) for k, v in paths.items()},
                   summary=headline(report)))  # fmt: skip
    return 0


def export_job(args: argparse.Namespace, emit: Emit) -> int:
    """``stillroom export``'s work; ``result`` is flagged when the export answers differently."""
    from engine.chat import keep_to_the_runs_card, resolve_run
    from engine.export import cleared_lines, export, find_gguf_converter

    run_dir = resolve_run(args.run, args.runs_dir)
    keep_to_the_runs_card(run_dir)
    emit(ev.Started(job="export", pid=os.getpid()))
    converter = None
    if args.format == "gguf":
        converter = find_gguf_converter(args.llama_cpp)
        emit(ev.Log(line=_("converter: {path}").format(path=converter)))
    result = export(run_dir, args.format, args.out, converter=converter, force=args.force)
    for line in cleared_lines(result):
        emit(ev.Log(line=line))
    parity = result.parity
    summary = ""
    if parity is not None:
        summary = parity.note or _("{differing} of {total} answers differ").format(
            differing=parity.differing, total=len(parity.prompts)
        )
    emit(ev.Result(job="export", paths={result.format: str(result.path)},
                   flagged=result.flagged, summary=summary))  # fmt: skip
    return 0


def generate_job(args: argparse.Namespace, emit: Emit, stop: threading.Event) -> ev.Event:
    """``stillroom generate``'s work; a SIGTERM (or its reader gone, see ``emitter``) sets
    ``stop``, which ends it once the answers in flight are saved.

    Generation says how it ended (``finished``, ``cancelled`` when stopped or at the
    budget, ``error`` when prompts are still unanswered or the endpoint refuses); that
    ending is held back until the ``result`` with the counts is out, then returned.
    """
    from engine.teacher.generate import result, run
    from engine.teacher.options import teacher_from_args

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: stop.set())
    teacher = teacher_from_args(args)
    ending: list[ev.Event] = []

    def hold_ending(event: ev.Event) -> None:
        if event.type in ev.TERMINAL:
            ending.append(event)
        else:
            emit(event)

    summary = run(teacher, hold_ending, stop.is_set)
    emit(result(summary, teacher))
    return ending[0]


def reported(job: str, work: Callable[[], int | ev.Event], emit: Emit) -> int:
    """Run a job's work and end it with one terminal event: ``finished`` or ``error``,
    or the ending the work returns (generation says its own)."""
    began = time.monotonic()
    try:
        code = work()
    except UserError as error:
        emit(ev.Error(kind="user", message=error.message, hint=error.hint))
        return 1
    except Exception as error:  # noqa: BLE001 - said as an event; the traceback goes to the log
        traceback.print_exc()
        emit(ev.Error(
            kind="exception", message=f"{type(error).__name__}: {error}",
            hint=_("It failed unexpectedly; the traceback is in {job}'s log.").format(job=job),
            log_tail=traceback.format_exc()[-4000:],
        ))  # fmt: skip
        return 1
    if isinstance(code, ev.Event):
        emit(code)
        return 1 if isinstance(code, ev.Error) else 0  # a stop asked for is no failure
    emit(ev.Finished(runtime_s=time.monotonic() - began))
    return code


def parser() -> argparse.ArgumentParser:
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
    eval_parser = sub.add_parser("eval", help="evaluate a run (see `stillroom eval`)")
    eval_parser.add_argument("--n", type=int)
    eval_parser.add_argument("--all", dest="everything", action="store_true")
    eval_parser.add_argument("--max-new-tokens", type=int)
    eval_parser.add_argument("--judge", action="store_true")
    eval_parser.add_argument("--no-retention", dest="retention", action="store_false")
    export_parser = sub.add_parser("export", help="export a run (see `stillroom export`)")
    export_parser.add_argument("--format", required=True)
    export_parser.add_argument("--out")
    export_parser.add_argument("--llama-cpp")
    export_parser.add_argument("--force", action="store_true")
    generate_parser = sub.add_parser("generate", help="teacher answers (see `stillroom generate`)")
    add_teacher_arguments(generate_parser)
    for job in (eval_parser, export_parser):
        job.add_argument("run")
        job.add_argument("--runs-dir", default="runs")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.job == "train":
        return train(args.run_dir.resolve(), args.probe, args.attempt, args.lock_fd)
    from engine.spawn import emitter
    from engine.stdout import answers_only

    stop = threading.Event()  # generate: a reader gone stops it at the next answer
    emit = emitter(answers_only(), stop.set if args.job == "generate" else None)  # events only
    _child_env()
    if args.job == "chat-serve":
        from engine.chat_serve import serve

        return serve(args.run_dir.resolve(), sys.stdin, emit)
    work = {
        "prepare": lambda: prepare(args.plan, args.run_dir.resolve(), emit),
        "eval": lambda: eval_job(args, emit),
        "export": lambda: export_job(args, emit),
        "generate": lambda: generate_job(args, emit, stop),
    }[args.job]
    return reported(args.job, work, emit)


if __name__ == "__main__":
    sys.exit(main())
