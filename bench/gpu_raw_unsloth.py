#!/usr/bin/env python3
"""Raw Unsloth (the reference notebook's script) at chosen shapes, one process for them all.

Runs ``baseline_unsloth.py`` unchanged except for what is patched in from
outside: ``use_gradient_checkpointing`` (``gc``: unsloth|on|off), two extra
steps at the end profiled with torch.profiler when ``STILLROOM_PROFILE`` is set
(the same callback Stillroom's child uses), and steady-state numbers cut at
``steps`` so the profiled steps never count. Several runs share one process, so
Unsloth's 30-40 s import is paid once; a later run finds the process's compiled
code warm, which can only favour it (the bench's ratios are Stillroom over these).

    python3 bench/gpu_raw_unsloth.py BASELINE_PY --runs '[{"tag": "raw_8x1", "steps": 40,
        "gc": "unsloth", "args": ["--batch-size", "8", "--grad-accum", "1",
        "--padding-free", "off", "--out-json", "OUT.json"]}]'
"""

from __future__ import annotations

import argparse
import gc as garbage
import importlib.util
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("baseline", type=Path)
    parser.add_argument("--runs", required=True, help="JSON list of {tag, steps, gc, args}")
    args = parser.parse_args()
    runs = json.loads(args.runs)
    spec = importlib.util.spec_from_file_location("baseline_unsloth", args.baseline)
    baseline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(baseline)
    profiled = bool(os.environ.get("STILLROOM_PROFILE"))

    # Build the model folder first (a child process), as the baseline does, before unsloth.
    baseline.ensure_assets(baseline.common_args("").parse_args(runs[0]["args"]))
    import torch
    import unsloth  # noqa: F401 - first, as in the baseline
    from unsloth import FastLanguageModel

    from engine.train.overhead import profiler_callback

    current: dict = {}
    peft = FastLanguageModel.get_peft_model
    FastLanguageModel.get_peft_model = staticmethod(
        lambda model, **kw: peft(model, **{**kw, "use_gradient_checkpointing": current["gc"]})
    )
    make_timer, summarize = baseline.make_timer_callback, baseline.summarize

    def make_timer_with_profile(counter):
        timer = make_timer(counter)
        profile = profiler_callback(current["total"])
        if profile is not None:
            for hook in ("on_step_begin", "on_step_end"):
                first, second = getattr(timer, hook), getattr(profile, hook)

                def both(*a, _first=first, _second=second, **kw):
                    _first(*a, **kw)
                    _second(*a, **kw)

                setattr(timer, hook, both)
        return timer

    def summarize_steady(timer, warmup, extra):
        for name in ("t", "real", "total", "rows", "calls"):
            setattr(timer, name, getattr(timer, name)[: current["steps"]])
        return summarize(timer, warmup, {**extra, "gradient_checkpointing": current["label"]})

    baseline.make_timer_callback = make_timer_with_profile
    baseline.summarize = summarize_steady
    for run in runs:
        label = run.get("gc", "unsloth")
        total = run["steps"] + (2 if profiled else 0)
        current.update(
            gc={"unsloth": "unsloth", "on": True, "off": False}[label],
            label=label,
            steps=run["steps"],
            total=total,
        )
        sys.argv = [str(args.baseline), "--steps", str(total), "--tag", run["tag"], *run["args"]]
        baseline.main()
        garbage.collect()
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
