"""Faults put into a real training child from outside, by the tests alone.

The child imports a ``sitecustomize`` from a folder the test puts first on its
PYTHONPATH; it wraps the training callback so that step N raises CUDA's
out-of-memory error or turns the weights to NaN. The product carries no hook.
"""

from __future__ import annotations

import os
from pathlib import Path

_SITECUSTOMIZE = '''
import torch

from engine.train import callbacks

KIND, STEP = {kind!r}, {step}
_begin = callbacks.RunCallback.on_step_begin


def on_step_begin(self, args, state, control, model=None, **kwargs):
    if state.global_step + 1 == STEP:
        if KIND == "oom":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. (injected by a test)")
        with torch.no_grad():
            next(p for p in model.parameters() if p.requires_grad).fill_(float("nan"))
    return _begin(self, args, state, control, model=model, **kwargs)


callbacks.RunCallback.on_step_begin = on_step_begin
'''


def fault_env(folder: Path, kind: str, step: int) -> dict[str, str]:
    """Environment for a training child whose step ``step`` fails with ``kind`` (oom or nan)."""
    assert kind in ("oom", "nan"), kind
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(_SITECUSTOMIZE.format(kind=kind, step=step))
    paths = [str(folder), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}
