"""GPU readings through NVML: memory, load, temperature, power, and who holds memory.

NVML is initialised on first use and queried under a lock (it is not
thread-safe, and the UI samples from a worker thread). Every field has a
default when the driver refuses it, so one unsupported reading (power on some
cards, process lists inside containers) never loses the others. Without an
NVIDIA driver, :func:`available` says so in one line and :func:`sample`
returns nothing: the CPU path carries on. No torch import here.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from types import ModuleType
from typing import TypeVar

from engine.events import GpuProcess, GpuSample
from engine.i18n import _

T = TypeVar("T")
MB = 2**20

_lock = threading.Lock()
_nvml: ModuleType | None = None
_reason: str | None = None  # set once NVML failed to start; never retried


def _start() -> ModuleType | None:
    """The initialised pynvml module, or None (with ``_reason`` saying why)."""
    global _nvml, _reason
    if _nvml is not None or _reason is not None:
        return _nvml
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as error:  # ImportError, NVMLError, OSError alike
        _reason = str(error)
        return None
    atexit.register(_shutdown)
    _nvml = pynvml
    return _nvml


def _shutdown() -> None:
    global _nvml
    with _lock:
        if _nvml is not None:
            _try(_nvml.nvmlShutdown)
            _nvml = None


def _try(query: Callable[..., T], *args: object, default: T | None = None) -> T | None:
    """One NVML call; the driver saying no (or not knowing) gives ``default``."""
    try:
        return query(*args)
    except Exception:  # NVMLError subclasses per code, plus driver oddities
        return default


def _text(value: str | bytes | None) -> str:
    return value.decode() if isinstance(value, bytes) else (value or "")


def available() -> tuple[bool, str]:
    """Whether NVML works here, and a one-line reason or driver description."""
    with _lock:
        nvml = _start()
        if nvml is None:
            return False, _("no NVIDIA driver found (pynvml: {error})").format(error=_reason)
        count = _try(nvml.nvmlDeviceGetCount, default=0)
        driver = _text(_try(nvml.nvmlSystemGetDriverVersion))
        if not count:
            return False, _("NVIDIA driver {driver} found but no GPU is visible").format(
                driver=driver or "?"
            )
        return True, _("NVIDIA driver {driver}, {count} GPU(s)").format(
            driver=driver or "?", count=count
        )


def driver_versions() -> dict[str, str]:
    """Driver version and the newest CUDA the driver supports ({} without a driver)."""
    with _lock:
        nvml = _start()
        if nvml is None:
            return {}
        cuda = _try(nvml.nvmlSystemGetCudaDriverVersion_v2) or _try(
            nvml.nvmlSystemGetCudaDriverVersion
        )
        versions = {"driver": _text(_try(nvml.nvmlSystemGetDriverVersion))}
        if cuda:
            versions["cuda_driver"] = f"{cuda // 1000}.{cuda % 1000 // 10}"
        return versions


def pid_tree(pid: int) -> set[int]:
    """``pid`` and all its descendants: the processes a run's memory belongs to."""
    import psutil

    try:
        return {pid} | {child.pid for child in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return {pid}


def _process_name(pid: int) -> str:
    import psutil

    try:
        return psutil.Process(pid).name()
    except psutil.Error:  # gone, or another user's process we may not inspect
        return ""


def _processes(nvml: ModuleType, handle: object, own_pids: set[int]) -> tuple[GpuProcess, ...]:
    """Compute and graphics processes on one GPU, merged by pid, biggest first."""
    used: dict[int, float] = {}
    for query in (
        nvml.nvmlDeviceGetComputeRunningProcesses,
        nvml.nvmlDeviceGetGraphicsRunningProcesses,
    ):
        for proc in _try(query, handle) or []:
            memory = getattr(proc, "usedGpuMemory", None) or 0  # None: not reported here
            used[proc.pid] = max(used.get(proc.pid, 0.0), memory / MB)
    found = [
        GpuProcess(pid=pid, mem_used_mb=mb, name=_process_name(pid), own=pid in own_pids)
        for pid, mb in used.items()
    ]
    return tuple(sorted(found, key=lambda p: -p.mem_used_mb))


def _sample_one(nvml: ModuleType, index: int, own_pids: set[int]) -> GpuSample | None:
    handle = _try(nvml.nvmlDeviceGetHandleByIndex, index)
    if handle is None:
        return None
    memory = _try(nvml.nvmlDeviceGetMemoryInfo, handle)
    utilisation = _try(nvml.nvmlDeviceGetUtilizationRates, handle)
    temperature = _try(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
    power_mw = _try(nvml.nvmlDeviceGetPowerUsage, handle)
    return GpuSample(
        index=index,
        name=_text(_try(nvml.nvmlDeviceGetName, handle)) or f"GPU {index}",
        mem_used_mb=memory.used / MB if memory else 0.0,
        mem_total_mb=memory.total / MB if memory else 0.0,
        util_pct=float(utilisation.gpu) if utilisation else None,
        temp_c=float(temperature) if temperature is not None else None,
        power_w=power_mw / 1000 if power_mw is not None else None,
        processes=_processes(nvml, handle, own_pids),
    )


def sample(own_pids: set[int] | frozenset[int] = frozenset()) -> list[GpuSample]:
    """One reading of every GPU; processes in ``own_pids`` are marked ``own``.

    Inside a container NVML may report host pids, in which case nothing is
    marked own; the memory is still listed.
    """
    with _lock:
        nvml = _start()
        if nvml is None:
            return []
        count = _try(nvml.nvmlDeviceGetCount, default=0) or 0
        readings = (_sample_one(nvml, index, set(own_pids)) for index in range(count))
        return [reading for reading in readings if reading is not None]
