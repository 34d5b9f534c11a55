"""Wall time of ``stillroom demo --no-wizard`` in a fresh folder, install excluded.

It runs the command as a user would, in a new temporary folder, and reports the
whole tour (finding the student, the demo teacher's answers, training, the
before/after answers) and the training part alone, read from the run's events.
``--offline`` keeps it to the cached or tiny random student. Prints one JSON
object. Targets on a 2-core machine: under 3 minutes with the real student,
under 1 with the tiny one.

Measured on the 2-core box (load average in brackets, from parallel jobs): the tiny
random student (already built), 200 steps: 12.5 s wall, 7.2 s of it training (2.8); 300
steps: 135 s (5) and 603 s (10-13). SmolLM2-135M-Instruct, 40 steps: 359 s, 289 s of it
training (3), and 2377 s (13); 30 steps: 302 s, 262 s of it training (3.5). Each time
the student gave the textbook's answer to the three tour questions and the base model to
none, except the real student after 30 steps (1 of 3).

    python bench/demo_bench.py [--offline]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine import events as ev
from engine import runs


def command() -> list[str]:
    found = shutil.which("stillroom")
    return [found] if found else [sys.executable, "-m", "tui.cli"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offline", action="store_true", help="pass --offline to the demo")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stillroom-demo-bench-") as scratch:
        folder = Path(scratch) / "stillroom-demo"
        argv = [*command(), "demo", str(folder), "--no-wizard"]
        if args.offline:
            argv.append("--offline")
        started = time.perf_counter()
        result = subprocess.run(argv, capture_output=True, text=True)
        wall_s = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(
                f"the demo failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        run = runs.list_runs(folder / "runs")[0]
        events = runs.read_events(Path(run.path))
        steps = [e for e in events if isinstance(e, ev.Step)]
        finished = next(e for e in events if isinstance(e, ev.Finished))
        student = next(
            line.removeprefix("student: ")
            for line in result.stdout.splitlines()
            if line.startswith("student: ")
        )
        learned = next(line for line in result.stdout.splitlines() if "textbook's answer" in line)
    print(
        json.dumps(
            {
                "bench": "demo --no-wizard",
                "wall_s": round(wall_s, 1),
                "train_s": round(finished.runtime_s, 1),
                "steps": len(steps) and steps[-1].step,
                "s_per_step": round(finished.runtime_s / max(1, steps[-1].step), 2)
                if steps
                else None,
                "student": student,
                "result": learned.strip(),
                "cpus": os.cpu_count(),
                "load_1min": round(os.getloadavg()[0], 2),
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
