"""Training on several processes at once: PyTorch DDP, started by ``torchrun``.

With ``training.gpus`` naming more than one process, the run's detached child
(``python -m engine train RUN``) becomes the launcher. It does what happens once
per run: the ``started`` event, the dataset rendered once into ``ranks/rows.pkl``,
the eval split, torn checkpoints cleared. Then it runs :func:`launch_command`
(``python -m torch.distributed.run --standalone ...``) in its own session, so the
ranks outlive a lost terminal as the single child does, and waits.

Each rank (``python -m engine.train.distributed RUN``, run by torchrun) loads the
rows, trains its share of every step through the HF Trainer (accelerate shards a
seeded sampler, so the plan's seed fixes each step's rows whatever the process count; on
Unsloth's padding-free batches, its sampler deals them to the ranks by token count),
and agrees with the others at each step's end on whether to stop (a cancel) and
save (wall time), so all ranks leave at one step boundary. Only rank 0 writes
events, checkpoints, the adapter and ``summary.json``. Each rank leaves
``ranks/rank-N.json`` saying how it ended; a rank that left none was killed (or
crashed in native code), and the launcher names it in the ``crashed`` ending.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine import events as ev
from engine.errors import UserError
from engine.i18n import _, ngettext
from engine.plan import Plan

if TYPE_CHECKING:
    import psutil

RANKS_DIR = "ranks"
LAUNCHER_ENV = "STILLROOM_LAUNCHER_PID"  # the ranks end when it does: it holds the run's lock
ROWS_FILE = "rows.pkl"
TOKEN_BALANCE_ENV = "UNSLOTH_TOKEN_BALANCE"
POLL_S = 0.5


@dataclass(frozen=True)
class World:
    """The processes a run trains on."""

    processes: int
    device: str  # cuda | cpu
    gpu_ids: tuple[int, ...] = ()  # CUDA ids the ranks use, in rank order; () on a CPU

    @property
    def backend(self) -> str:
        """The collective library: NCCL between GPUs, gloo between CPU processes."""
        return "nccl" if self.device == "cuda" else "gloo"

    @property
    def launched(self) -> bool:
        """Whether the ranks are started by torchrun (else the child trains in itself)."""
        return self.processes > 1 or bool(self.gpu_ids)


def resolve(gpus: str | int | list[int], visible: int) -> World:
    """What ``training.gpus`` means on a machine with ``visible`` CUDA devices.

    ``auto`` is every visible GPU (one process with one GPU or none); ``N`` is N
    processes (N GPUs, or N gloo processes on a CPU); ``[ids]`` are those GPUs.
    """
    if gpus == "auto":
        return World(max(visible, 1), "cuda" if visible else "cpu")
    if isinstance(gpus, int):
        if visible and gpus > visible:
            raise UserError(
                _("training.gpus = {gpus} but this machine shows {visible} GPU(s)").format(
                    gpus=gpus, visible=visible
                ),
                hint=_(
                    'Set training.gpus = {visible} or "auto" (`stillroom doctor` lists the cards).'
                ).format(visible=visible),
            )
        return World(gpus, "cuda" if visible else "cpu")
    if not visible:
        raise UserError(
            _("training.gpus = {gpus} names GPUs, but no CUDA GPU is visible here").format(
                gpus=gpus
            ),
            hint=_(
                'Set training.gpus = "auto" (or a number of CPU processes) to train on the CPU.'
            ),
        )
    missing = [i for i in gpus if i >= visible]
    if missing:
        raise UserError(
            _("training.gpus = {gpus} names GPU {id}, but the visible ids are 0-{last}").format(
                gpus=gpus, id=missing[0], last=visible - 1
            ),
            hint=_(
                "Use ids from `stillroom doctor`'s card list (they count the visible cards, "
                "after CUDA_VISIBLE_DEVICES)."
            ),
        )
    return World(len(gpus), "cuda", tuple(gpus))


def keep_to_one_card(gpus: str | int | list[int], *, serving: bool = False) -> None:
    """Before CUDA starts, hide every card but the one this process uses: ``training.gpus = 1``
    trains in this process on the first card, and chat, eval and export (``serving``) load
    the student on the first card the run trained on. Else a library that reads every card
    at import leaves a context on the others (0.5 GiB on an idle H200 beside the one
    training, measured)."""
    if gpus != 1 and not serving:
        return
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "":  # "" hides every card: a CPU run
        return
    first = gpus[0] if isinstance(gpus, list) else 0
    os.environ["CUDA_VISIBLE_DEVICES"] = card_id(first) or card_id(0)  # a plan for another box


def card_id(index: int, env: Mapping[str, str] = os.environ) -> str | None:
    """What ``CUDA_VISIBLE_DEVICES`` in ``env`` calls visible card ``index``: its entry there,
    the index itself where the variable is unset, None where the list is shorter."""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if not visible:
        return str(index)
    ids = [part.strip() for part in visible.split(",")]
    return ids[index] if index < len(ids) else None


def planned_processes(gpus: str | int | list[int], visible: int) -> int:
    """How many ranks ``training.gpus`` asks for, read away from the machine that trains it (a
    plan made for another box): ``auto`` counts the ``visible`` GPUs here."""
    if gpus == "auto":
        return max(visible, 1)
    return gpus if isinstance(gpus, int) else len(gpus)


def visible_gpus() -> int:
    """CUDA devices this process may use, without starting CUDA here (the launcher's card
    memory stays free for rank 0)."""
    import torch

    return torch.cuda.device_count()


def split_batch(micro: int, accum: int, processes: int) -> tuple[int, int]:
    """Each rank's (micro-batch, accumulation) so that all ranks together take ``micro x accum``
    samples a step: the largest micro-batch up to ``micro`` that divides the rank's share."""
    samples = micro * accum
    if samples % processes:
        fits = next(g for g in range(accum, accum + processes + 1) if micro * g % processes == 0)
        raise UserError(
            _(
                "{samples} samples per step (batch_size x grad_accum) cannot be shared evenly "
                "by {processes} processes"
            ).format(samples=samples, processes=processes),
            hint=_(
                "Make batch_size x grad_accum a multiple of {processes} (e.g. grad_accum = "
                "{fits}), or set training.gpus to a number that divides {samples}."
            ).format(processes=processes, fits=fits, samples=samples),
        )
    share = samples // processes
    rank_micro = max(m for m in range(1, min(micro, share) + 1) if share % m == 0)
    return rank_micro, share // rank_micro


def rank_plan(plan: Plan, processes: int) -> Plan:
    """The plan as one rank trains it (its micro-batch and accumulation): what one card holds,
    for the memory estimate. Each rank keeps a whole copy of the model."""
    if processes <= 1:
        return plan
    t = plan.training
    micro, accum = split_batch(t.batch_size, t.grad_accum, processes)
    changed = plan.model_copy(deep=True)
    changed.training.batch_size, changed.training.grad_accum = micro, accum
    return changed


def launch_command(world: World, run_dir: Path, attempt: int, probe: bool = False) -> list[str]:
    """The command the launcher runs, as a user can run it by hand from the run folder."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        f"--nproc-per-node={world.processes}",
        "--max-restarts=0",
        "-m",
        "engine.train.distributed",
        str(run_dir),
        "--attempt",
        str(attempt),
    ]
    return command + (["--probe"] if probe else [])


def train(
    plan: Plan,
    run_dir: Path,
    emit: Callable[[ev.Event], None],
    should_stop: Callable[[], bool],
    *,
    probe: bool = False,
    attempt: int = 1,
) -> None:
    """The training child's work: in this process, or as the launcher of several ranks."""
    from engine.train.job import error_event, run
    from engine.train.resplit import saying_a_new_split

    try:
        world = resolve(plan.training.gpus, visible_gpus())
    except UserError as error:
        emit(error_event(error, plan, "plan"))
        return
    if not probe:
        emit = saying_a_new_split(emit, run_dir, world.processes)
    if not world.launched:
        run(plan, run_dir, emit, should_stop, probe=probe, attempt=attempt)
        return
    launch(plan, run_dir, emit, should_stop, world=world, probe=probe, attempt=attempt)


def launch(
    plan: Plan,
    run_dir: Path,
    emit: Callable[[ev.Event], None],
    should_stop: Callable[[], bool],
    *,
    world: World,
    probe: bool,
    attempt: int,
) -> None:
    """Render once, start the ranks under torchrun, and make sure the attempt has an ending."""
    from engine.train.backend_choice import choose_backend
    from engine.train.checkpoints import prepare_resume
    from engine.train.dataset import prepare_rows, save_eval_split
    from engine.train.job import _student_source, error_event, started_event

    stage = "plan"
    try:
        backend, reason = choose_backend(plan)
        device = _describe(world)
        emit(
            started_event(
                plan, backend, reason, device, probe=probe, attempt=attempt,
                processes=world.processes,
            )
        )  # fmt: skip
        stage = "student"
        for line in _student_source(plan):
            emit(ev.Log(line=line))
        stage = "dataset"
        data = prepare_rows(plan, emit)  # once, here: the ranks read the rendered rows
        if not probe:
            save_eval_split(run_dir, data.eval_conversations)
            prepare_resume(run_dir)  # torn checkpoints go before any rank looks
        stage = "train"
        folder = run_dir / RANKS_DIR
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        with open(folder / ROWS_FILE, "wb") as handle:
            pickle.dump(data, handle, protocol=pickle.HIGHEST_PROTOCOL)
        command = launch_command(world, run_dir, attempt, probe)
        line = ngettext(
            "{n} process ({backend}): {command}",
            "{n} processes ({backend}): {command}",
            world.processes,
        ).format(n=world.processes, backend=world.backend, command=" ".join(command))
        emit(ev.Log(line=line))
        code, gone = _run_ranks(command, world, run_dir, should_stop)
        (folder / ROWS_FILE).unlink(missing_ok=True)
        if not _attempt_ended(run_dir):
            emit(_rank_failure(run_dir, world, code, gone))
    except Exception as error:  # noqa: BLE001 - every failure must end in an event
        emit(error_event(error, plan, stage))


def _describe(world: World) -> str:
    """The ``started`` event's device: how many of which card, the cards a plan named (so a
    box of several shows which), and the collective library."""
    if world.device == "cpu":
        return f"{world.processes} x cpu ({world.backend})"
    from engine.gpu import sample

    names = {s.index: s.name for s in sample()}
    name = names.get(world.gpu_ids[0] if world.gpu_ids else 0, "cuda")
    named = f"GPU {','.join(map(str, world.gpu_ids))}, " if world.gpu_ids else ""
    return f"{world.processes} x {name} ({named}{world.backend})"


def _run_ranks(
    command: list[str], world: World, run_dir: Path, should_stop: Callable[[], bool]
) -> tuple[int, list[int]]:
    """torchrun, its output in train.log; a stop request becomes the cancel file every rank
    reads at its step's end (the ranks then agree on the step to stop at). Returns torchrun's
    exit code and the ranks in the order their processes vanished."""
    from engine.runs import CANCEL_FILE, LOG_FILE

    env = {**os.environ, LAUNCHER_ENV: str(os.getpid())}
    if world.gpu_ids:  # resolve() checked the ids against the visible cards
        ids = [card_id(i, env) for i in world.gpu_ids]
        env["CUDA_VISIBLE_DEVICES"] = ",".join(ids)  # type: ignore[arg-type] - none is None
    with open(run_dir / LOG_FILE, "ab") as log:
        ranks = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        watch = RankWatch(ranks.pid, world.processes)
        while ranks.poll() is None:
            if should_stop():
                (run_dir / CANCEL_FILE).touch()
            watch.poll()
            time.sleep(POLL_S)
    return ranks.returncode, watch.gone


class RankWatch:
    """The order in which torchrun's rank processes vanish. On CUDA a rank blocked in an NCCL
    collective when a peer is killed cannot run its SIGTERM handler, so it too dies without
    an ending file: only the order of going says which rank went first."""

    def __init__(self, launcher_pid: int, processes: int) -> None:
        self._launcher, self._processes = launcher_pid, processes
        self._pids: dict[int, int] = {}  # rank -> pid
        self.gone: list[int] = []

    def poll(self) -> None:
        if len(self._pids) < self._processes:
            found = rank_processes(self._launcher)
            for rank, process in found.items():
                self._pids.setdefault(rank, process.pid)
        for rank, pid in self._pids.items():
            if rank not in self.gone and not _alive(pid):
                self.gone.append(rank)


def rank_processes(launcher_pid: int) -> dict[int, psutil.Process]:
    """``{rank: psutil.Process}`` of the ranks alive under the launcher ``launcher_pid``."""
    import psutil

    try:
        children = psutil.Process(launcher_pid).children(recursive=True)
    except psutil.Error:
        return {}
    found = {}
    for child in children:
        try:
            if "engine.train.distributed" in child.cmdline():
                found[int(child.environ()["RANK"])] = child
        except (psutil.Error, KeyError, ValueError):
            continue
    return found


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _attempt_ended(run_dir: Path) -> bool:
    from engine import run_events

    found = run_events.attempts(run_events.load(run_dir).events)
    return bool(found) and found[-1].ending is not None


def _rank_failure(run_dir: Path, world: World, code: int, gone: list[int]) -> ev.Error:
    """The ending when rank 0 wrote none: the first rank to vanish without a word (killed),
    else the first rank that failed, named."""
    from engine.runs import crash_event

    ended = {}
    for rank in range(world.processes):
        try:
            ended[rank] = json.loads((run_dir / RANKS_DIR / f"rank-{rank}.json").read_text())
        except (OSError, ValueError):
            continue
    order = {rank: i for i, rank in enumerate(gone)}
    silent = sorted(
        (rank for rank in range(world.processes) if rank not in ended),
        key=lambda rank: order.get(rank, len(order)),
    )
    failed = sorted(
        (r for r, e in ended.items() if e.get("ended") == "failed"), key=lambda r: ended[r]["t"]
    )
    if silent or not failed:
        crash = crash_event(run_dir)
        message = (
            _(
                "rank {rank} of {n} ended without finishing (killed, out of host memory, or a "
                "crash in native code); torchrun stopped the others (exit {code})"
            )
            if silent
            else _(
                "a rank of {n} ended without finishing (killed, out of host memory, or a crash "
                "in native code); torchrun stopped the others (exit {code})"
            )
        )
        return ev.Error(
            kind="crashed",
            message=message.format(rank=silent[0] if silent else "", n=world.processes, code=code),
            hint=f"{crash.hint} {_other_count(run_dir)}",
            log_tail=crash.log_tail,
        )
    rank = failed[0]
    error = ev.decode(ended[rank]["event"])
    assert isinstance(error, ev.Error)
    return ev.Error(
        kind=error.kind,
        message=_("rank {rank} of {n}: {message}").format(
            rank=rank, n=world.processes, message=error.message
        ),
        hint=f"{error.hint} {_other_count(run_dir)}".strip(),
        log_tail=error.log_tail,
    )


def _other_count(run_dir: Path) -> str:
    return _(
        "`stillroom train --resume {run} --gpus N` resumes it on another number of GPUs."
    ).format(run=run_dir)


class Ranks:
    """This process's place among the ranks, for :func:`engine.train.job._train`."""

    def __init__(self, rank: int, processes: int, device: str):
        self.rank, self.processes, self.device = rank, processes, device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def agreement(self, run_callback, counter):
        """The callback that makes every rank leave a step with the same decisions."""
        from engine.train.callbacks import RankAgreement

        return RankAgreement(run_callback, counter, self.device)

    def balance_tokens(self, setup) -> None:
        """Let Unsloth deal each step's rows to the ranks by token count, where that pays.

        DDP waits at every step for the slowest rank, and where a padding-free micro-batch
        costs what its tokens cost, that is the rank dealt the longer rows.
        ``UNSLOTH_TOKEN_BALANCE`` (Unsloth's own sampler, read when its trainer is built) gives
        every rank the same number of rows with near-equal token sums; a step keeps its rows,
        and with the token count averaged across ranks (transformers' default) its loss. On two
        H200s, where the 1.5B student's micro-batch costs the same whatever its tokens, it
        changed nothing measured (docs/gpu.md); it pays where a step's time follows its tokens.
        Padded batches would only gain padding from it. A user's own value of the variable wins.
        """
        if self.processes > 1 and setup.backend == "unsloth" and setup.batching != "padded":
            os.environ.setdefault(TOKEN_BALANCE_ENV, "1")

    def say_when_balanced(self, trainer, emit: Callable[[ev.Event], None]) -> None:
        """Log the balancing once Unsloth has built the loader with it: it turns it down (and
        says why in the log) where the loss would not stay exact."""
        build = trainer.get_train_dataloader

        def get_train_dataloader(*args, **kwargs):
            loader = build(*args, **kwargs)
            if getattr(trainer, "_unsloth_token_balance_active", False):
                line = _(
                    "each step's rows are dealt to the {processes} GPUs by token count "
                    "({variable}=1): the same rows a step, and no GPU waits for a longer share"
                ).format(processes=self.processes, variable=TOKEN_BALANCE_ENV)
                emit(ev.Log(line=line))
            return loader

        trainer.get_train_dataloader = get_train_dataloader


# At or under this many rows a rank, in one micro-batch, a launch-bound card's step costs what
# a twice-larger one does, so the ranks train no faster than one card: the default 8-sample
# plan on two H200s (4 rows a rank) measured 1.00x and 0.80x the tokens/s of one, and one H200
# took 0.210 s for a 4-row step against 0.171 s for 8 rows, but 0.385 s for 16: at 8 rows a
# rank a split can pay (docs/gpu.md, "Multi-GPU").
NO_SPEEDUP_ROWS = 4


def no_speedup(card: str, micro: int, accum: int, processes: int) -> tuple[str, str] | None:
    """The warning (message, hint) where ``processes`` ranks, each taking ``micro`` x ``accum``
    rows a step on cards named ``card``, will train no faster than one of those cards."""
    from engine.train.throughput import overhead_bound

    if processes < 2 or accum != 1 or micro > NO_SPEEDUP_ROWS or not overhead_bound(card):
        return None
    samples = micro * processes
    message = _(
        "{processes} GPUs will train no faster than one here, and may be slower: each rank "
        "takes its {micro} of the {samples} samples per step in one micro-batch, and on this "
        "card a step's time is set by kernel launches, not by rows"
    ).format(processes=processes, micro=micro, samples=samples)
    hint = _(
        "More GPUs speed up more samples per step (batch_size x grad_accum of {enough} or more, "
        "{rows} a rank), or set training.gpus = 1 to leave the other cards free."
    ).format(enough=2 * NO_SPEEDUP_ROWS * processes, rows=2 * NO_SPEEDUP_ROWS)
    return message, hint


def _write_ending(run_dir: Path, rank: int, ended: str, event: ev.Event | None = None) -> None:
    from engine.fileio import atomic_write_text

    record = {"rank": rank, "pid": os.getpid(), "ended": ended, "t": time.time()}
    if event is not None:
        record["event"] = ev.encode(event)
    atomic_write_text(run_dir / RANKS_DIR / f"rank-{rank}.json", json.dumps(record) + "\n")


def _end_with_launcher() -> None:
    """The launcher holds the run's lock: if it is killed alone, the ranks stop too (as
    torchrun stops them), so no second trainer can start on a folder they still write."""
    import threading

    import psutil

    pid = os.environ.get(LAUNCHER_ENV)
    if not pid:  # started by hand, without a launcher
        return
    try:
        launcher = psutil.Process(int(pid))
    except (psutil.Error, ValueError):
        os.kill(os.getpid(), signal.SIGTERM)
        return

    def watch() -> None:
        try:
            while launcher.is_running() and launcher.status() != psutil.STATUS_ZOMBIE:
                time.sleep(1.0)
        except psutil.Error:
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="launcher-watch", daemon=True).start()


def rank_main(run_dir: Path, attempt: int, probe: bool) -> int:
    """One rank's life, under torchrun: train its share, then say how it ended."""
    rank, local = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    processes = int(os.environ["WORLD_SIZE"])

    def on_term(signum, frame) -> None:  # torchrun stopping the ranks after another failed
        if not (run_dir / RANKS_DIR / f"rank-{rank}.json").exists():
            _write_ending(run_dir, rank, "terminated")
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    _end_with_launcher()
    started, stage, plan = time.time(), "setup", None
    try:
        from engine import runs
        from engine.plan import load_plan
        from engine.train.backend_choice import choose_backend

        plan = load_plan(run_dir / runs.PLAN_FILE)
        backend = choose_backend(plan)[0]
        import torch

        cuda = torch.cuda.is_available()
        if cuda:
            # Before Unsloth's import reads the current card: else every rank but 0 leaves a
            # CUDA context (0.7 GiB, measured on an H200) on card 0, rank 0's card.
            torch.cuda.set_device(local)
        if backend == "unsloth":
            import unsloth  # noqa: F401 - first, before transformers, trl and peft
        import torch.distributed as dist

        from engine.train.dataset import describe
        from engine.train.job import _order_line, _setup, _train

        dist.init_process_group("nccl" if cuda else "gloo")
        with open(run_dir / RANKS_DIR / ROWS_FILE, "rb") as handle:
            data = pickle.load(handle)
        emit = runs.EventWriter(run_dir) if rank == 0 else (lambda event: None)
        setup = _setup(plan, backend, data, probe, processes=processes)
        for line in [*describe(plan, setup, data), setup.checkpointing_reason, _order_line(setup)]:
            if line:
                emit(ev.Log(line=line))
        if setup.device == "cuda":
            from engine.train.job import _device_name

            slow = no_speedup(_device_name(), setup.micro_batch, setup.grad_accum, processes)
            if slow:
                emit(ev.Warning(message=slow[0], hint=slow[1]))
        cancel = run_dir / runs.CANCEL_FILE
        stage = "train"
        ranks = Ranks(rank, processes, f"cuda:{local}" if cuda else "cpu")
        ranks.balance_tokens(setup)
        _train(plan, setup, data, run_dir, emit, cancel.exists, started, probe, attempt, ranks)
        dist.destroy_process_group()
    except Exception as error:  # noqa: BLE001 - the launcher reports it with the rank
        from engine.train.job import error_event

        if plan is None:
            event = ev.Error(kind="exception", message=f"{type(error).__name__}: {error}")
        else:
            event = error_event(error, plan, stage)
        _write_ending(run_dir, rank, "failed", event)
        return 1
    _write_ending(run_dir, rank, "done")
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m engine.train.distributed")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--attempt", type=int, required=True)
    parser.add_argument("--probe", action="store_true")
    args = parser.parse_args(argv)
    return rank_main(args.run_dir.resolve(), args.attempt, args.probe)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Its ending is on disk: skip the interpreter's teardown of torch (seconds on a busy box)
    # that torchrun, and the run's ending, would otherwise wait for.
    os._exit(code)
