"""Faults put into a real training child from outside, by the tests alone.

The child imports a ``sitecustomize`` from a folder the test puts first on its
PYTHONPATH; it wraps the training callback so that step N raises CUDA's
out-of-memory error or turns the weights to NaN, or keeps one rank from
leaving its ending. The product carries no hook.
"""

from __future__ import annotations

import os
from pathlib import Path

_SITECUSTOMIZE = """
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
"""


def fault_env(folder: Path, kind: str, step: int) -> dict[str, str]:
    """Environment for a training child whose step ``step`` fails with ``kind`` (oom or nan)."""
    assert kind in ("oom", "nan"), kind
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(_SITECUSTOMIZE.format(kind=kind, step=step))
    paths = [str(folder), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}


_MUTE_RANK = """
import os
import time

if os.environ.get("RANK") == "{rank}":
    from engine import fileio

    _write = fileio.atomic_write_text

    def _mute(path, text, *args, **kwargs):
        if path.name == "rank-{rank}.json":  # its ending: linger, then go without a word
            time.sleep({linger})
            return None
        return _write(path, text, *args, **kwargs)

    fileio.atomic_write_text = _mute
"""


def mute_rank_env(folder: Path, rank: int, linger: float = 3.0) -> dict[str, str]:
    """Environment for a run whose rank ``rank`` lingers, then dies without an ending when a
    peer goes, as a rank blocked in an NCCL collective does on CUDA when a peer is killed."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(_MUTE_RANK.format(rank=rank, linger=linger))
    paths = [str(folder), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
