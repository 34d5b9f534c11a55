#!/usr/bin/env python3
"""Which threads of the training processes keep a CPU busy? Prints a JSON line per window.

On a host whose vCPUs slow each other (``bench/host_contention.py``), every busy thread of one
rank (a CUDA sync that spins, NCCL's proxy, OpenMP workers) slows the other rank's launches.
Each window lists, for every process whose command line names ``engine``, its threads that
used more than ``--min`` % of a CPU, by thread name.

    python3 bench/thread_cpu.py [--every 15] [--min 5] [--for 600]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def short(command: str) -> str:
    """A process's command line from its module on (``engine.train.distributed RUN ...``)."""
    return command[command.find("engine") :][:70]


def cpu_ticks() -> dict[tuple[int, int], tuple[str, str, int]]:
    """(pid, tid): (command, thread name, user + system ticks) of every ``engine`` process."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if "engine" not in command or "thread_cpu" in command:
                continue
            for task in (proc / "task").iterdir():
                stat = (task / "stat").read_text()
                name = stat[stat.index("(") + 1 : stat.rindex(")")]
                fields = stat[stat.rindex(")") + 2 :].split()
                found[int(proc.name), int(task.name)] = (
                    short(command),
                    name,
                    int(fields[11]) + int(fields[12]),
                )
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=float, default=15.0)
    parser.add_argument("--min", type=float, default=5.0, help="percent of one CPU")
    parser.add_argument("--for", dest="total", type=float, default=600.0)
    args = parser.parse_args()
    end = time.monotonic() + args.total
    before, at = cpu_ticks(), time.monotonic()
    while time.monotonic() < end:
        time.sleep(args.every)
        now, then = cpu_ticks(), time.monotonic()
        window: dict[str, dict[str, float]] = {}
        for key, (command, name, ticks) in now.items():
            if key in before:
                percent = 100 * (ticks - before[key][2]) / TICK / (then - at)
                if percent >= args.min:
                    threads = window.setdefault(f"{key[0]} {command}", {})
                    threads[f"{name}/{key[1]}"] = round(percent, 1)
        print(json.dumps({"t": round(time.time()), "busy": window}), flush=True)
        before, at = now, then


if __name__ == "__main__":
    main()
