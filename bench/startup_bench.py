"""Time from launching ``stillroom`` to its first painted frame, in a real 80x24 terminal.

Each run starts the command in a pseudo-terminal (as over SSH) in an empty
folder and waits for the welcome screen's text to arrive on the terminal; it
then quits with ctrl+q. Prints one JSON object with the median of the runs.
Target: under 1 s on a 2-core machine, in English and with the Chinese catalog loaded.

    python bench/startup_bench.py [--runs 7] [--lang zh]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import pty
import select
import shutil
import signal
import statistics
import struct
import sys
import tempfile
import termios
import time

# Text on the first frame of the welcome screen, in each language.
MARKERS = {"en": b"New plan", "zh": "新计划".encode()}
TIMEOUT_S = 30.0


def command() -> list[str]:
    found = shutil.which("stillroom")
    return [found] if found else [sys.executable, "-m", "tui.cli"]


def one_run(argv: list[str], folder: str, marker: bytes = MARKERS["en"]) -> float:
    """Seconds from fork to ``marker`` appearing on the terminal."""
    start = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal of 80x24, as small as Stillroom supports
        os.chdir(folder)
        os.environ.update(TERM="xterm-256color", COLUMNS="80", LINES="24")
        os.execvp(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    seen = b""
    try:
        while marker not in seen.replace(b"\x1b", b""):
            if time.perf_counter() - start > TIMEOUT_S:
                raise TimeoutError(f"no first frame after {TIMEOUT_S} s: {seen[-300:]!r}")
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(fd, 65536)
                except OSError:
                    break
        elapsed = time.perf_counter() - start
        os.write(fd, b"\x11")  # ctrl+q
        time.sleep(0.2)
    finally:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)
    if marker not in seen:
        raise RuntimeError(f"the app exited before its first frame: {seen[-300:]!r}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--lang", choices=sorted(MARKERS), default="en")
    args = parser.parse_args()
    argv = [*command(), "--lang", args.lang]
    marker = MARKERS[args.lang]
    with tempfile.TemporaryDirectory() as folder:
        one_run(argv, folder, marker)  # warm the file cache, as a second launch would be
        times = [one_run(argv, folder, marker) for _ in range(args.runs)]
    print(json.dumps({
        "benchmark": "startup_to_first_frame",
        "command": " ".join(os.path.basename(a) for a in argv),
        "lang": args.lang,
        "runs": args.runs,
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
        "target_s": 1.0,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
