"""Torch on a CPU shares the cores with every other busy process: let its idle threads sleep.

By default torch's OpenMP threads spin while they wait for work, which only pays on cores
nobody else wants. On a loaded 2-core box a LoRA step of SmolLM2-135M on 8 rows took
26-97 s with torch's 2 threads spinning and 6.5-12 s with them sleeping
(bench/cpu_train_bench.py); one `stillroom chat --prompt` answer took 99-116 s against
39-47 s. No torch import here: OpenMP reads the setting once, when torch loads.
"""

from __future__ import annotations

import os


def let_idle_threads_sleep() -> None:
    """Without a GPU, set ``OMP_WAIT_POLICY=PASSIVE`` unless the user chose; call before torch loads.

    GPU runs keep the default.
    """
    from engine.gpu import available

    if os.environ.get("CUDA_VISIBLE_DEVICES") == "" or not available()[0]:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
