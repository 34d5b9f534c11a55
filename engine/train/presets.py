"""Starting points by GPU memory, as plan overrides with a one-line reason each.

A preset only sets what the card size changes (precision, micro-batch shape,
sequence length); it keeps the samples per optimiser step of the reference
notebook (2 x 4 = 8), so switching preset changes speed and memory, not what
the student learns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.errors import UserError
from engine.i18n import N_, _
from engine.plan import Plan, plan_from_dict


@dataclass(frozen=True)
class Preset:
    """Plan overrides for GPUs with at least ``min_gpu_mb`` of memory (0: no GPU)."""

    name: str
    title_en: str  # marked with N_; `title` and `why` give them in the current language
    min_gpu_mb: float
    why_en: str
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    # A student the card size calls for, looked up when applied (it may be downloaded since).
    student: Callable[[], str] | None = None

    @property
    def title(self) -> str:
        return _(self.title_en)

    @property
    def why(self) -> str:
        """One line on why these settings suit the card, in the current language."""
        return _(self.why_en)

    def apply(self, plan: Plan) -> Plan:
        """The plan with this preset's keys set, everything else kept."""
        data = plan.to_dict()
        for section, values in self.overrides.items():
            data[section] = {**data.get(section, {}), **values}
        if self.student is not None:
            data["student"] = {**data.get("student", {}), "model": self.student()}
        return plan_from_dict(data, f"preset {self.name}")


def cpu_student() -> str:
    """SmolLM2-135M-Instruct: the folder `stillroom demo` saved it to, else its hub id."""
    from engine.demo_student import HUB_ID, converted_folder

    folder = converted_folder()
    return str(folder) if (folder / "config.json").is_file() else HUB_ID


# Smallest card first; thresholds sit below each class's usable MiB as NVML reports it
# (T4 15360, A10/L4/4090 22-24 GiB, A100-40 40960, A100/H100-80 ~80 GiB).
PRESETS: tuple[Preset, ...] = (
    Preset(
        name="cpu-small",
        title_en=N_("CPU: a 135M student (SmolLM2)"),
        min_gpu_mb=0,
        why_en=N_(
            "No GPU: SmolLM2-135M-Instruct in full precision with transformers + PEFT, "
            "seconds a step; `stillroom demo` fetches it without the hub."
        ),
        student=cpu_student,
        overrides={
            "student": {"load_in_4bit": False, "backend": "hf", "max_seq_length": 512},
            "training": {
                "max_steps": 10,
                "batch_size": 2,
                "grad_accum": 1,
                "optimizer": "adamw_torch",
            },
        },
    ),
    Preset(
        name="t4-15gb",
        title_en=N_("15 GB (T4): the reference notebook"),
        min_gpu_mb=1,
        why_en=N_(
            "The Colab notebook's settings: 4-bit, 2 x 4 micro-batches, 2048 tokens; "
            "about 3 GB at peak, so larger students fit too."
        ),
    ),
    Preset(
        name="24gb",
        title_en=N_("24 GB (A10, L4, RTX 3090/4090)"),
        min_gpu_mb=20_000,
        why_en=N_(
            "Same 8 samples a step as one 8 x 1 micro-batch: 2-5x the tokens/s of 2 x 4 "
            "measured on an H100, still 4-bit."
        ),
        overrides={"training": {"batch_size": 8, "grad_accum": 1}},
    ),
    Preset(
        name="40-80gb",
        title_en=N_("40-80 GB (A100, H100)"),
        min_gpu_mb=36_000,
        why_en=N_(
            "Room for the student in bf16: no 4-bit dequantisation each step and no "
            "quantisation error; 8 x 1 micro-batches, 4096-token rows."
        ),
        overrides={
            "student": {"load_in_4bit": False, "max_seq_length": 4096},
            "training": {"batch_size": 8, "grad_accum": 1},
        },
    ),
)


def preset_for(gpu_total_mb: float | None) -> Preset:
    """The largest preset the card can take; ``None`` (no GPU) gives the CPU preset."""
    total = gpu_total_mb or 0
    return max((p for p in PRESETS if p.min_gpu_mb <= total), key=lambda p: p.min_gpu_mb)


def get_preset(name: str) -> Preset:
    for preset in PRESETS:
        if preset.name == name:
            return preset
    raise UserError(
        _("unknown preset {name!r}").format(name=name),
        hint=_("One of: {names}").format(names=", ".join(p.name for p in PRESETS)),
    )
