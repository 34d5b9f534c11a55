#!/usr/bin/env python3
"""Do two busy processes on this host slow each other? Prints JSON.

A step of a small student is bound by host-side work (kernel launches, Python), so a DDP run's
ranks run as fast as their CPUs do side by side. This times a pure-Python loop pinned to CPU 0,
alone, then beside a twin pinned to each other CPU in turn. On dedicated cores every ratio is
about 1.0; on the lent 2 x H200 machine (a KVM guest, 32 vCPUs) it was 1.15-1.92 (median 1.68,
docs/gpu.md "Multi-GPU"), which is what keeps two ranks from each running at one rank's speed.

    python3 bench/host_contention.py [--loops N] [--cpus 1 8 16]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import time


def spin(cpu: int, loops: int, seconds: mp.Queue) -> None:
    """Pure-Python work on one CPU, timed."""
    os.sched_setaffinity(0, {cpu})
    start = time.perf_counter()
    total = 0
    for i in range(loops):
        total += i * i
    seconds.put(time.perf_counter() - start)


def together(cpus: list[int], loops: int) -> float:
    """The slowest of one ``spin`` per CPU in ``cpus``, all at once."""
    spawn = mp.get_context("spawn")
    seconds = spawn.Queue()
    workers = [spawn.Process(target=spin, args=(cpu, loops, seconds)) for cpu in cpus]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return max(seconds.get() for _ in workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=10_000_000)
    parser.add_argument("--cpus", type=int, nargs="*", help="twins' CPUs (default: every other)")
    args = parser.parse_args()
    usable = sorted(os.sched_getaffinity(0))
    twins = args.cpus or [cpu for cpu in usable if cpu != usable[0]]
    alone = together([usable[0]], args.loops)
    slowdown = {cpu: round(together([usable[0], cpu], args.loops) / alone, 3) for cpu in twins}
    print(
        json.dumps(
            {
                "cpus": len(usable),
                "alone_s": round(alone, 3),
                "slowdown_beside_twin": slowdown,
                "median": round(statistics.median(slowdown.values()), 3) if slowdown else None,
            }
        )
    )


if __name__ == "__main__":
    main()
