"""Can this machine train this plan? Checks for ``stillroom doctor`` and the welcome screen.

Each check is plain data with a status (ok, warn, fail) and, when not ok, a
hint that says what to do. Only ``fail`` means training cannot start; a box
without a GPU is a warning, because the CPU path still runs. Imports torch
(inside :func:`diagnose`) to ask about CUDA and bf16: run it off the UI thread.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from engine import gpu
from engine.errors import UserError
from engine.plan import Plan
from engine.train.backend_choice import choose_backend
from engine.train.memory import estimate
from engine.train.presets import preset_for

Status = Literal["ok", "warn", "fail"]
MIN_FREE_DISK_GB = 5.0
# Hub access that blocks or slows an air-gapped box unless these are set.
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "UNSLOTH_DISABLE_STATISTICS")


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    hint: str = ""


def _torch_check() -> tuple[Check, bool]:
    """torch's own view of CUDA and bf16; returns the check and whether CUDA works."""
    import torch

    if not torch.cuda.is_available():
        return Check("torch", "warn", f"torch {torch.__version__}, no CUDA device visible"), False
    bf16 = torch.cuda.is_bf16_supported()
    detail = f"torch {torch.__version__}, CUDA {torch.version.cuda}, bf16 {'yes' if bf16 else 'no'}"
    hint = "" if bf16 else "No bf16 on this card (pre-Ampere): training uses fp16."
    return Check("torch", "ok", detail, hint), True


def _gpu_checks(plan: Plan) -> list[Check]:
    ok, reason = gpu.available()
    if not ok:
        hint = f"Training runs on the CPU: tiny models only (preset {preset_for(None).name})."
        return [Check("gpu", "warn", reason, hint)]
    versions = gpu.driver_versions()
    checks = [
        Check(
            "driver",
            "ok",
            f"NVIDIA driver {versions.get('driver', '?')}, CUDA up to "
            f"{versions.get('cuda_driver', '?')}",
        )
    ]
    for reading in gpu.sample():
        free_mb = reading.mem_total_mb - reading.mem_used_mb
        others = sum(p.mem_used_mb for p in reading.processes)
        detail = (
            f"{reading.name}: {free_mb / 1024:.1f} of {reading.mem_total_mb / 1024:.1f} GB free"
            + (
                f" ({others / 1024:.1f} GB held by {len(reading.processes)} process(es))"
                if others
                else ""
            )
        )
        checks.append(Check(f"gpu {reading.index}", "ok", detail))
        if reading.index == 0:
            checks.append(_fit_check(plan, reading.mem_total_mb, free_mb))
    return checks


def _fit_check(plan: Plan, total_mb: float, free_mb: float) -> Check:
    try:
        result = estimate(plan, gpu_total_mb=total_mb, gpu_free_mb=free_mb)
    except UserError as error:
        return Check("memory fit", "warn", str(error), error.hint)
    status: Status = {"fits": "ok", "tight": "warn"}.get(result.verdict, "fail")
    preset = preset_for(total_mb)
    hint = f"Preset for this card: {preset.name} ({preset.why})"
    if result.suggestions:
        hint = "Try " + " or ".join(str(s) for s in result.suggestions) + ". " + hint
    return Check("memory fit", status, f"{plan.student.model}: {result.summary()}", hint)


def _backend_check(plan: Plan, cuda: bool) -> Check:
    try:
        name, reason = choose_backend(plan, cuda=cuda)
    except UserError as error:
        return Check("backend", "fail", str(error), error.hint)
    return Check("backend", "ok", f"{name}: {reason}")


def _disk_check(plan: Plan) -> Check:
    """Free space where runs are written (the nearest existing folder of ``runs_dir``)."""
    where = Path(plan.output.runs_dir).resolve()
    while not where.exists():
        where = where.parent
    free_gb = shutil.disk_usage(where).free / 2**30
    detail = f"{free_gb:.1f} GB free under {where}"
    if free_gb < MIN_FREE_DISK_GB:
        return Check(
            "disk", "fail", detail, "A run with checkpoints needs a few GB; free some space."
        )
    return Check("disk", "ok", detail)


def _api_key_check(plan: Plan) -> Check:
    """Whether the teacher's key variable is set; its value is never read out."""
    variable = plan.teacher.api_key_env
    if not variable:
        return Check("teacher key", "ok", "the teacher needs no API key")
    if os.environ.get(variable):
        return Check("teacher key", "ok", f"{variable} is set")
    return Check(
        "teacher key",
        "warn",
        f"{variable} is not set",
        f"export {variable}=... before generating data (not needed to train on existing data).",
    )


def _offline_check() -> Check:
    unset = [name for name in OFFLINE_VARIABLES if not os.environ.get(name)]
    if not unset:
        return Check("offline", "ok", " and ".join(f"{n}=1" for n in OFFLINE_VARIABLES))
    return Check(
        "offline",
        "ok",
        f"{', '.join(unset)} not set: models may be fetched from the hub",
        "On an air-gapped box set HF_HUB_OFFLINE=1 and UNSLOTH_DISABLE_STATISTICS=1; "
        "Unsloth otherwise contacts the hub at every model load.",
    )


def diagnose(plan: Plan | None = None) -> list[Check]:
    """Every check, in the order a user reads them."""
    plan = plan or Plan()
    torch_check, cuda = _torch_check()
    return [
        *_gpu_checks(plan),
        torch_check,
        _backend_check(plan, cuda),
        _disk_check(plan),
        _api_key_check(plan),
        _offline_check(),
    ]


def as_json(checks: list[Check]) -> list[dict[str, Any]]:
    return [asdict(check) for check in checks]
