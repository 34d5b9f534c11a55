"""Key-press-to-paint latency while the Chat step's transcript streams a 1,000-token answer.

A headless 80x24 app holds the Chat step's own widgets: the transcript
(``ChatLog``) above a prompt ``Input``. A task feeds the transcript 1,000
pieces at ``--rate`` pieces a second (a fast GPU streams 100-200) while keys
are typed into the prompt. Per press: from posting the key event to the end of
the first screen update after the Input handled it, including rendering that
update to the terminal's escape sequences. Prints one JSON object; target p95
< 50 ms. On the 2-core CPU box (another test run beside it), redrawing the
answer per piece vs at most 20 times a second (``REDRAW_S``):
200 pieces/s p50 12.9 -> 7.4 ms, p95 30.3 -> 32.8 ms, max 33.1 -> 36.6 ms;
1,000 pieces/s p50 16.3 -> 12.2 ms, p95 43.0 -> 32.3 ms, max 85.5 -> 35.7 ms.

    python bench/chat_stream_bench.py [--rate 200] [--pieces 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textual import events  # noqa: E402
from textual.app import App, ComposeResult  # noqa: E402
from textual.widgets import Input  # noqa: E402

from bench.paint_clock import percentile, record_paints  # noqa: E402
from tui.widgets.chat_log import ChatLog  # noqa: E402

WORDS = "the student answers in plain words and ends its turn cleanly when done".split()


class StreamApp(App[None]):
    def compose(self) -> ComposeResult:
        yield ChatLog(id="transcript")
        yield Input(id="prompt")


async def measure(rate: float, pieces: int) -> dict[str, float]:
    app = StreamApp()
    changed: list[float] = []
    async with app.run_test(size=(80, 24)) as pilot:
        paints = record_paints(app)
        log = app.query_one(ChatLog)
        prompt = app.query_one(Input)
        prompt.focus()
        app.screen.watch(prompt, "value", lambda _: changed.append(time.perf_counter()))
        log.add_user("Explain distillation at length.")
        log.start_answer("student")
        done = asyncio.Event()

        async def stream() -> None:
            for n in range(pieces):
                log.add_piece(random.choice(WORDS) + (" " if n % 12 else ".\n"))
                await asyncio.sleep(1 / rate)
            done.set()

        feeder = asyncio.create_task(stream())
        latencies = []
        while not done.is_set():
            changed.clear()
            posted = time.perf_counter()
            app.post_message(events.Key("a", "a"))
            while not (changed and paints and paints[-1] > changed[0]):
                await asyncio.sleep(0.0005)
            latencies.append(next(t for t in paints if t > changed[0]) - posted)
            await asyncio.sleep(random.uniform(0.02, 0.06))
        await feeder
        log.finish(log.answer_text, "ended cleanly", cut=False)
        await pilot.pause()
    ms = [x * 1000 for x in latencies]
    return {
        "presses": len(ms),
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(percentile(ms, 0.95), 1),
        "max_ms": round(max(ms), 1),
        "paints": len(paints),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="pieces streamed per second")
    parser.add_argument("--pieces", type=int, default=1000)
    args = parser.parse_args()
    random.seed(7)
    result = asyncio.run(measure(args.rate, args.pieces))
    print(json.dumps({
        "benchmark": "chat_stream_key_to_paint",
        "terminal": "80x24 headless",
        "pieces": args.pieces,
        "pieces_per_s": args.rate,
        **result,
        "target_p95_ms": 50,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
