"""Benchmark ``stillroom inspect`` end to end on 50,000 generated Alpaca-like rows.

Reads a JSONL file, detects, normalises, finds problems, loads the tiny test
tokenizer and renders every row with its chat template for token stats. Prints
one JSON object; the target is all rows in under 20 s on a 2-core machine.

    python bench/inspect_bench.py [--rows N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere

from engine.data.inspect import inspect_source  # noqa: E402
from engine.tiny_model import build_tiny_tokenizer  # noqa: E402

TARGET_S = 20.0
WORDS = (
    "the model learns to answer questions about planets rivers history code and cooking "
    "with short clear sentences while the teacher explains each step in plain words"
).split()


def write_rows(path: Path, count: int, seed: int = 0) -> None:
    """Alpaca-sized rows (about 100 words each; Stanford Alpaca averages about 70), 40% with
    an input, one in a thousand with an empty answer for the problem report to find."""
    rng = random.Random(seed)

    def words(low: int, high: int) -> str:
        return " ".join(rng.choices(WORDS, k=rng.randint(low, high)))

    with open(path, "w", encoding="utf-8") as handle:
        for i in range(count):
            row = {
                "instruction": f"{words(4, 25)}?",
                "input": words(3, 40) if i % 5 < 2 else "",
                "output": "" if i % 1000 == 999 else words(5, 150),
            }
            handle.write(json.dumps(row) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, tokenizer_dir = Path(tmp) / "alpaca.jsonl", Path(tmp) / "tokenizer"
        write_rows(data, args.rows)
        build_tiny_tokenizer().save_pretrained(tokenizer_dir)
        start = time.perf_counter()
        report = inspect_source(str(data), model=str(tokenizer_dir), max_seq_length=2048)
        seconds = time.perf_counter() - start
    result = {
        "rows": report.rows,
        "usable_rows": report.usable_rows,
        "seconds": round(seconds, 2),
        "rows_per_s": round(report.rows / seconds),
        "stages_s": report.seconds,
        "tokens": report.tokens,
        "target_s": TARGET_S,
        "within_target": seconds < TARGET_S * args.rows / 50_000,
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),  # other work on the machine skews timings
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
