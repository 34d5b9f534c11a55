"""Bench only: settings a run's processes take from the environment, to time them against
Stillroom's defaults in one call (``bench/gpu_env_compare.sh``) without a plan key for each.

With this folder first on ``PYTHONPATH``:

- ``BENCH_DDP_KWARGS``, a JSON object (say ``{"gradient_as_bucket_view":true,
  "broadcast_buffers":false}``): every ``DistributedDataParallel`` the ranks build takes these
  keyword arguments over the ones the Trainer passes.
- ``BENCH_PIN_CPUS``, CPU numbers such as ``2,10``: the rank of ``LOCAL_RANK`` i (and the
  process that trains one card in-process) keeps all its threads on the i-th CPU, so the
  Python thread and the autograd thread that take turns driving the GPU share one CPU.
"""

import json
import os

_KWARGS = json.loads(os.environ.get("BENCH_DDP_KWARGS") or "{}")
_PIN = [int(cpu) for cpu in os.environ.get("BENCH_PIN_CPUS", "").split(",") if cpu]

if _KWARGS:
    import torch.nn.parallel

    _init = torch.nn.parallel.DistributedDataParallel.__init__

    def _init_with_bench_kwargs(self, *args, **kwargs):
        _init(self, *args, **{**kwargs, **_KWARGS})

    torch.nn.parallel.DistributedDataParallel.__init__ = _init_with_bench_kwargs

if _PIN:
    os.sched_setaffinity(0, {_PIN[int(os.environ.get("LOCAL_RANK", "0")) % len(_PIN)]})
