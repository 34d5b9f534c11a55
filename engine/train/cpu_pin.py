"""Keep a one-GPU run's threads on one CPU while it trains.

A step of a small student on a fast card is bound by the host, not the card: the Python
thread launches the forward pass and autograd's thread the backward, taking turns, so the
process keeps one CPU busy. Left to the scheduler, the two run on different CPUs and pass
the step's objects between their caches. Kept on one CPU, a step of the 1.5B student at the
notebook's 2 x 4 took 13-15 % less time on an H200 (A/B/A/B in one call, 16 vCPUs, the same
losses) and 19-22 % less on a two-H200 machine; at Stillroom's default one 8-row micro-batch
it was never slower, 9 % less on average but within the spread of unpinned runs (docs/gpu.md,
"CPU pinning"). Pinning holds
for the training loop only: loading and saving keep every CPU.

The ranks of a multi-GPU run are not pinned yet: their gain (19 %, each rank on its own CPU)
was measured with every thread pinned from the start (bench/rank_env), not on this path.

``STILLROOM_PIN_CPU=0`` (or ``off``, ``no``, ``false``) leaves every thread to the scheduler.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

from engine import events as ev
from engine.i18n import _

PIN_ENV = "STILLROOM_PIN_CPU"
OFF = frozenset({"0", "false", "no", "off"})  # STILLROOM_PIN_CPU values that turn it off


def choose_cpu(allowed: set[int], card: int, taken: set[int] | frozenset[int] = frozenset()) -> int:
    """The CPU for the process that drives the machine's card ``card``: one of its own, so the
    ranks of a run, and runs started at once on other cards, never share one (their choices
    could race if they went by load); the first allowed CPU, which takes most interrupts, last.
    A CPU another process keeps to itself (``taken``: a run training on the same card) is
    skipped while there is another."""
    ordered = sorted(allowed)
    start = (card + 1) % len(ordered)
    turn = ordered[start:] + ordered[:start]
    return next((cpu for cpu in turn if cpu not in taken), turn[0])


def _taken() -> set[int]:
    """The CPUs other programs keep to themselves: each one process's whole affinity (kernel
    threads, which have no command line, are pinned to every CPU and do not count)."""
    import psutil

    taken: set[int] = set()
    for process in psutil.process_iter(["cpu_affinity", "cmdline"]):
        cpus, cmdline = process.info["cpu_affinity"], process.info["cmdline"]
        if cmdline and cpus and len(cpus) == 1 and process.pid != os.getpid():
            taken.update(cpus)
    return taken


def card_number(visible: int) -> int:
    """The machine's number for visible card ``visible`` (``CUDA_VISIBLE_DEVICES`` maps it; a
    card it names by UUID keeps its visible number)."""
    from engine.train.distributed import card_id

    found = card_id(visible)
    return int(found) if found and found.isdigit() else visible


def _set_every_thread(cpus: set[int]) -> None:
    """This process's threads (Linux lists them in /proc) and the ones they start, on ``cpus``."""
    task = "/proc/self/task"
    for tid in [int(t) for t in os.listdir(task)] if os.path.isdir(task) else [0]:
        with contextlib.suppress(OSError):  # a thread that ended since the listing
            os.sched_setaffinity(tid, cpus)


@contextlib.contextmanager
def pinned(
    device: str, card: int, emit: Callable[[ev.Event], None], *, processes: int = 1
) -> Iterator[int | None]:
    """Within the block every thread of the process, and those started in it (autograd's), run
    on one CPU, chosen for visible card ``card``; yields it, or None where nothing is pinned:
    not a one-GPU run, a single CPU, the environment says no, or no CPU affinity here."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    one_gpu = device == "cuda" and processes == 1
    off = os.environ.get(PIN_ENV, "").strip().lower() in OFF
    if not one_gpu or len(allowed) < 2 or off:
        yield None
        return
    import torch

    cpu, threads = choose_cpu(allowed, card_number(card), _taken()), torch.get_num_threads()
    _set_every_thread({cpu})
    torch.set_num_threads(1)  # OpenMP threads started now would share the one CPU
    line = _(
        "the training loop runs on CPU {cpu}, where the threads that drive the GPU share one "
        "cache ({env}=0 leaves them to the scheduler)"
    ).format(cpu=cpu, env=PIN_ENV)
    emit(ev.Log(line=line))
    try:
        yield cpu
    finally:
        _set_every_thread(allowed)
        torch.set_num_threads(threads)
