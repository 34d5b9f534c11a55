"""Which training backend runs a plan here, and why, in one line.

Unsloth is the fast path but needs a CUDA GPU; transformers + PEFT runs
everywhere (and is what CPU tests use). Detecting Unsloth never imports it:
``import unsloth`` takes ~30 s and patches transformers as a side effect.
"""

from __future__ import annotations

import importlib.util

from engine.errors import UserError
from engine.i18n import _
from engine.plan import Plan


def unsloth_installed() -> bool:
    return importlib.util.find_spec("unsloth") is not None


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (imports torch: call from workers or the child)."""
    import torch

    return torch.cuda.is_available()


def resolve_auto_backend(plan: Plan) -> str:
    """A cheap guess for estimates and the UI: no torch import, the plan's choice if set."""
    if plan.student.backend != "auto":
        return plan.student.backend
    return "unsloth" if unsloth_installed() else "hf"


def choose_backend(
    plan: Plan, *, cuda: bool | None = None, unsloth: bool | None = None
) -> tuple[str, str]:
    """``(name, reason)`` of the backend that will train ``plan``.

    ``cuda`` and ``unsloth`` default to probing this machine. A plan that
    insists on Unsloth where it cannot run is a :class:`UserError`.
    """
    cuda = cuda_available() if cuda is None else cuda
    unsloth = unsloth_installed() if unsloth is None else unsloth
    wanted = plan.student.backend
    if wanted == "hf":
        return "hf", _("the plan asks for transformers + PEFT (student.backend = 'hf')")
    if cuda and unsloth:
        return "unsloth", _("CUDA GPU and Unsloth installed: the fast path")
    if wanted == "unsloth":
        if not cuda:
            raise UserError(
                _("student.backend = 'unsloth' but this machine lacks a CUDA GPU"),
                hint=_("Set student.backend = 'auto' to fall back to transformers + PEFT."),
            )
        raise UserError(
            _("student.backend = 'unsloth' but this machine lacks the unsloth package"),
            hint=_(
                "Set student.backend = 'auto' to fall back to transformers + PEFT, or "
                "`pip install -e '.[gpu]'`."
            ),
        )
    if cuda:
        return "hf", _("Unsloth is not installed (`pip install -e '.[gpu]'`): transformers + PEFT")
    return "hf", _("no CUDA GPU: transformers + PEFT on the CPU (practical for tiny models only)")
