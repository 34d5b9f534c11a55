"""Can this machine train this plan? Checks for ``stillroom doctor`` and the welcome screen.

Each check is plain data with a status (ok, warn, fail) and, when not ok, a
hint that says what to do. Only ``fail`` means training cannot start; a box
without a GPU is a warning, because the CPU path still runs. Imports torch
(inside :func:`diagnose`) to ask about CUDA and bf16: run it off the UI thread.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from engine import gpu
from engine.errors import UserError
from engine.i18n import _
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
        detail = _("torch {version}, no CUDA device visible").format(version=torch.__version__)
        return Check("torch", "warn", detail), False
    bf16 = torch.cuda.is_bf16_supported()
    detail = (
        _("torch {version}, CUDA {cuda}, bf16 yes")
        if bf16
        else _("torch {version}, CUDA {cuda}, bf16 no")
    ).format(version=torch.__version__, cuda=torch.version.cuda)
    hint = "" if bf16 else _("No bf16 on this card (pre-Ampere): training uses fp16.")
    return Check("torch", "ok", detail, hint), True


def _gpu_checks(plan: Plan) -> list[Check]:
    ok, reason = gpu.available()
    if not ok:
        hint = _("Training runs on the CPU: small models only (preset {preset}).").format(
            preset=preset_for(None).name
        )
        return [Check("gpu", "warn", reason, hint), _cpu_fit_check(plan)]
    versions = gpu.driver_versions()
    checks = [
        Check(
            "driver",
            "ok",
            _("NVIDIA driver {driver}, CUDA up to {cuda}").format(
                driver=versions.get("driver", "?"), cuda=versions.get("cuda_driver", "?")
            ),
        )
    ]
    readings = gpu.sample()
    used = _cards_in_use(plan, len(readings))
    for reading in readings:
        free_mb = reading.mem_total_mb - reading.mem_used_mb
        others = sum(p.mem_used_mb for p in reading.processes)
        detail = (
            _(
                "{card}: {free:.1f} of {total:.1f} GB free ({held:.1f} GB held by "
                "{processes} process(es))"
            )
            if others
            else _("{card}: {free:.1f} of {total:.1f} GB free")
        ).format(
            card=reading.name,
            free=free_mb / 1024,
            total=reading.mem_total_mb / 1024,
            held=others / 1024,
            processes=len(reading.processes),
        )
        checks.append(Check(f"gpu {reading.index}", "ok", detail))
        if reading.index in used:
            checks.append(_fit_check(plan, reading.mem_total_mb, free_mb, reading.index, len(used)))
    return checks


def _cards_in_use(plan: Plan, visible: int) -> list[int]:
    """The cards the plan's ``training.gpus`` trains on here (card 0 if it names none here)."""
    from engine.train.distributed import resolve

    try:
        world = resolve(plan.training.gpus, visible)
    except UserError:
        return [0]
    return list(world.gpu_ids or range(world.processes))


def _speed_check(plan: Plan, visible: int, card: str | None = None) -> Check | None:
    """Whether the plan's cards (named ``card``; else CUDA says) will train it faster than one:
    the ranks' own warning, before the run, where a card takes a rank's rows in one
    micro-batch (``rebatch``, on a card with room)."""
    from engine.train.distributed import no_speedup, resolve, split_batch

    t = plan.training
    micro, accum = (t.batch_size * t.grad_accum, 1) if t.rebatch else (t.batch_size, t.grad_accum)
    try:
        world = resolve(t.gpus, visible)
        micro, accum = split_batch(micro, accum, world.processes)
    except UserError:
        return None  # the processes check says what is wrong
    if world.device != "cuda" or world.processes < 2:
        return None
    if card is None:
        import torch

        card = torch.cuda.get_device_name((world.gpu_ids or (0,))[0])
    slow = no_speedup(card, micro, accum, world.processes)
    return Check("speed", "warn", *slow) if slow else None


def _processes_check(plan: Plan, visible: int) -> Check | None:
    """How many processes ``training.gpus`` starts here, and whether NCCL can join the cards."""
    import torch

    from engine.train.distributed import resolve, split_batch

    t = plan.training
    try:
        world = resolve(t.gpus, visible)
        split_batch(t.batch_size, t.grad_accum, world.processes)  # the run refuses an uneven one
    except UserError as error:
        return Check("processes", "fail", error.message, error.hint)
    if world.processes == 1 and visible <= 1:
        return None
    gpus, n = json.dumps(plan.training.gpus), world.processes
    if world.device == "cpu":
        return Check(
            "processes",
            "ok",
            _("training.gpus = {gpus}: {n} process(es) on the CPU, joined by gloo").format(
                gpus=gpus, n=n
            ),
        )
    if not torch.distributed.is_available() or not torch.distributed.is_nccl_available():
        return Check(
            "processes",
            "fail" if world.processes > 1 else "warn",
            _(
                "training.gpus = {gpus}: {n} process(es), but this torch has no NCCL to join "
                "the cards"
            ).format(gpus=gpus, n=n),
            _(
                "Install a CUDA build of torch from pytorch.org (it ships NCCL), or set "
                "training.gpus = 1."
            ),
        )
    cards = list(world.gpu_ids or range(world.processes))
    if len(cards) == 1:
        return Check(
            "processes",
            "ok",
            _("training.gpus = {gpus}: {n} process(es) on card {card}").format(
                gpus=gpus, n=n, card=cards[0]
            ),
        )
    pairs = [(a, b) for a in cards for b in cards if a < b]
    direct = [p for p in pairs if torch.cuda.can_device_access_peer(*p)]
    nccl = ".".join(map(str, torch.cuda.nccl.version()))
    names = {"gpus": gpus, "n": n, "nccl": nccl, "cards": ", ".join(map(str, cards))}
    if len(direct) < len(pairs):
        return Check(
            "processes",
            "warn",
            _(
                "training.gpus = {gpus}: {n} process(es), NCCL {nccl} across cards {cards}; "
                "{indirect} pair(s) of cards have no direct path (NCCL goes through host "
                "memory there, slower)"
            ).format(indirect=len(pairs) - len(direct), **names),
            _(
                "`nvidia-smi topo -m` shows the links; cards on one NVLink or PCIe switch scale "
                "best."
            ),
        )
    return Check(
        "processes",
        "ok",
        _(
            "training.gpus = {gpus}: {n} process(es), NCCL {nccl} across cards {cards}, every "
            "pair peer-to-peer"
        ).format(**names),
    )


def _fit_check(
    plan: Plan, total_mb: float, free_mb: float, index: int = 0, processes: int = 1
) -> Check:
    """One card's fit; with several ranks, a rank's share (the fixes are changes to the plan)."""
    try:
        result = estimate(plan, gpu_total_mb=total_mb, gpu_free_mb=free_mb, processes=processes)
    except UserError as error:
        return Check(_fit_name(index), "warn", str(error), error.hint)
    status: Status = {"fits": "ok", "tight": "warn"}.get(result.verdict, "fail")
    preset = preset_for(total_mb)
    hint = _("Preset for this card: {preset} ({why})").format(preset=preset.name, why=preset.why)
    if result.suggestions:
        hint = _("Try {changes}. {preset_hint}").format(
            changes=_(" or ").join(str(s) for s in result.suggestions), preset_hint=hint
        )
    return Check(_fit_name(index), status, f"{plan.student.model}: {result.summary()}", hint)


def _fit_name(index: int) -> str:
    return "memory fit" if index == 0 else f"memory fit gpu {index}"


# A CPU step of a model this size takes seconds; past it, minutes (2-core box, fp32).
CPU_COMFORTABLE_PARAMS = 0.5e9
FP32_TRAINING_BYTES_PER_PARAM = 4 * 1.5  # weights, plus room for activations and LoRA state


def _cpu_fit_check(plan: Plan) -> Check:
    """Without a GPU the student trains in float32 in RAM: say whether that is sensible."""
    import psutil

    from engine.train.memory import resolve_arch

    try:
        arch, _source = resolve_arch(plan.student.model)
    except UserError as error:
        detail = _("no GPU; {problem}").format(problem=error.message)
        return Check("memory fit", "warn", detail, error.hint)
    params = arch.params()
    need_gb = params * FP32_TRAINING_BYTES_PER_PARAM / 2**30
    free_gb = psutil.virtual_memory().available / 2**30
    detail = _(
        "no GPU: {model} ({params:.2f} B parameters) trains in float32 on the CPU, about "
        "{need:.1f} GB of {free:.1f} GB free RAM"
    ).format(model=plan.student.model, params=params / 1e9, need=need_gb, free=free_gb)
    if need_gb > free_gb:
        hint = _("Pick a smaller student, or train on a GPU.")
        return Check("memory fit", "fail", detail, hint)
    if params > CPU_COMFORTABLE_PARAMS:
        return Check(
            "memory fit",
            "warn",
            detail,
            _(
                "It fits, but each step takes minutes on a CPU: use a GPU, or a student under "
                "0.5 B parameters (`stillroom demo` brings one)."
            ),
        )
    return Check("memory fit", "ok", detail)


def _precision_check(plan: Plan, cuda: bool) -> Check:
    """The weights and compute precision this machine will train the plan in."""
    import torch

    from engine.train.backends import precision_for

    precision = precision_for(plan, cuda)
    if not cuda:
        hint = (
            _("load_in_4bit needs CUDA, so the CPU trains the full-precision model.")
            if plan.student.load_in_4bit
            else ""
        )
        return Check("precision", "ok", _("float32 weights and compute on the CPU"), hint)
    detail = (
        _("4-bit NF4 weights (QLoRA), {precision} compute")
        if plan.student.load_in_4bit
        else _("16-bit weights, {precision} compute")
    ).format(precision=precision)
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        return Check(
            "precision",
            "fail",
            _("{detail}: this card has no bf16").format(detail=detail),
            _("Set student.dtype = 'auto' (fp16 on this card)."),
        )
    return Check("precision", "ok", detail)


def _student_check(plan: Plan) -> Check:
    """Whether the student model can be loaded: a folder, the hub cache, or a reachable hub."""
    from engine.hub import locate_model

    try:
        source = locate_model(plan.student.model, source=plan.student.source)
    except UserError as error:
        return Check("student model", "fail", error.message, error.hint)
    return Check("student model", "ok", f"{source.model}: {source.detail}")


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
    detail = _("{free:.1f} GB free under {where}").format(free=free_gb, where=where)
    if free_gb < MIN_FREE_DISK_GB:
        hint = _("A run with checkpoints needs a few GB; free some space.")
        return Check("disk", "fail", detail, hint)
    return Check("disk", "ok", detail)


def _api_key_check(plan: Plan) -> Check:
    """Whether the teacher's key variable is set; its value is never read out."""
    variable = plan.teacher.api_key_env
    if not variable:
        return Check("teacher key", "ok", _("the teacher needs no API key"))
    if os.environ.get(variable):
        return Check("teacher key", "ok", _("{variable} is set").format(variable=variable))
    return Check(
        "teacher key",
        "warn",
        _("{variable} is not set").format(variable=variable),
        _(
            "export {variable}=... before generating data (not needed to train on existing data)."
        ).format(variable=variable),
    )


def _offline_check(plan: Plan) -> Check:
    """The offline variables, judged against whether the hub answers from here.

    A ModelScope student never asks Hugging Face for its weights, so that hub's
    reachability says nothing about it (and ModelScope's is not probed here).
    """
    from engine.hub import endpoint, hub_reachable

    unset = [name for name in OFFLINE_VARIABLES if not os.environ.get(name)]
    if not unset:
        return Check("offline", "ok", " and ".join(f"{n}=1" for n in OFFLINE_VARIABLES))
    if plan.student.source == "modelscope":
        return Check(
            "offline",
            "ok",
            _(
                "the student comes from ModelScope (student.source), so the Hugging Face hub is "
                "not asked; whether ModelScope answers from here is not checked"
            ),
            _(
                "Set UNSLOTH_DISABLE_STATISTICS=1 so Unsloth does not contact the Hugging Face "
                "hub at every model load."
            ),
        )
    hint = _(
        "Set HF_HUB_OFFLINE=1 and UNSLOTH_DISABLE_STATISTICS=1 so models load from the cache "
        "without waiting for the hub (Unsloth contacts it at every model load)."
    )
    problem = hub_reachable()
    if problem:
        detail = _("{variables} not set, and {problem}").format(
            variables=", ".join(unset), problem=problem
        )
        return Check("offline", "warn", detail, hint)
    return Check(
        "offline",
        "ok",
        _("the hub at {endpoint} answers; {variables} not set").format(
            endpoint=endpoint(), variables=", ".join(unset)
        ),
        _(
            "On an air-gapped box: set HF_HUB_OFFLINE=1 and UNSLOTH_DISABLE_STATISTICS=1 so "
            "models load from the cache without waiting for the hub (Unsloth contacts it at "
            "every model load)."
        ),
    )


def diagnose(plan: Plan | None = None) -> list[Check]:
    """Every check, in the order a user reads them."""
    plan = plan or Plan()
    torch_check, cuda = _torch_check()
    visible = _visible_gpus() if cuda else 0
    cards = [_processes_check(plan, visible), _speed_check(plan, visible)]
    return [
        *_gpu_checks(plan),
        *[check for check in cards if check],
        torch_check,
        _precision_check(plan, cuda),
        _backend_check(plan, cuda),
        _student_check(plan),
        _disk_check(plan),
        _api_key_check(plan),
        _offline_check(plan),
    ]


def _visible_gpus() -> int:
    from engine.train.distributed import visible_gpus

    return visible_gpus()


def as_json(checks: list[Check]) -> list[dict[str, Any]]:
    return [asdict(check) for check in checks]
