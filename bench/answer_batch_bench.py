#!/usr/bin/env python3
"""Eval's answers one at a time against :meth:`Student.answer_all`'s batches. Prints JSON.

The student loads as ``stillroom eval`` loads it (``engine.chat.load_model``: Unsloth's
inference mode on a CUDA card, PEFT elsewhere) and answers the first ``--prompts`` prompts of
the retention set greedily, ``--tokens`` at most each, once per prompt and then in batches of
``ANSWER_BATCH``; the JSON has both times and how many answers are word for word the same.

    python bench/answer_batch_bench.py MODEL_DIR [--prompts 32] [--tokens 48] [--backend auto]

On a CUDA machine without weights, ``--build-qwen25`` first builds the random-init
Qwen2.5-1.5B-Instruct shape into MODEL_DIR (its answers are noise and run to the budget: the
times are the point there, not the words).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--build-qwen25", action="store_true")
    args = parser.parse_args()
    if args.backend == "unsloth":
        import unsloth  # noqa: F401 - first, before transformers, trl and peft
    from engine.chat import ANSWER_BATCH, load_model
    from engine.plan import Plan
    from engine.retention import RETENTION_HALF

    if args.build_qwen25 and not (args.model_dir / "config.json").is_file():
        from engine.tiny_model import QWEN25_1_5B, build_tiny_model

        build_tiny_model(args.model_dir, dtype="bfloat16", **QWEN25_1_5B)
    plan = Plan.model_validate({"student": {"model": str(args.model_dir), "backend": args.backend}})
    student = load_model(plan)
    asked = [[{"role": "user", "content": c.prompt}] for c in RETENTION_HALF[: args.prompts]]
    student.answer(asked[0], max_new_tokens=4)  # warm-up: first-use kernels, caches
    started = time.perf_counter()
    alone = [student.answer(messages, max_new_tokens=args.tokens) for messages in asked]
    alone_s = time.perf_counter() - started
    started = time.perf_counter()
    together = student.answer_all(asked, max_new_tokens=args.tokens)
    together_s = time.perf_counter() - started
    import torch

    result = {
        "bench": "answer_batch",
        "model": str(args.model_dir),
        "backend": student.backend,
        "device": torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else platform.processor() or "cpu",
        "prompts": len(asked),
        "max_new_tokens": args.tokens,
        "batch": ANSWER_BATCH,
        "tokens": sum(a.tokens for a in alone),
        "one_at_a_time_s": round(alone_s, 2),
        "batched_s": round(together_s, 2),
        "speedup": round(alone_s / together_s, 2),
        "same_words": sum(a.text == b.text for a, b in zip(alone, together, strict=True)),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
