"""The wizard's steps, in order, and what stands in for the ones not built yet."""

from __future__ import annotations

from dataclasses import dataclass

from engine.i18n import N_


@dataclass(frozen=True)
class Step:
    """One step of the step bar; ``later`` explains a step the wizard cannot run yet.

    ``title`` is marked for the catalog: show it as ``_(step.title)``.
    """

    name: str
    title: str
    later: str = ""


STEPS: tuple[Step, ...] = (
    Step("teacher", N_("Teacher")),
    Step("data", N_("Data")),
    Step("student", N_("Student")),
    Step("train", N_("Train")),
    Step("chat", N_("Chat")),
)
READY = tuple(step.name for step in STEPS if not step.later)


def step_named(name: str) -> Step:
    return next(step for step in STEPS if step.name == name)


def neighbour(name: str, offset: int) -> Step | None:
    """The step ``offset`` places away, or ``None`` past either end."""
    names = [step.name for step in STEPS]
    index = names.index(name) + offset
    return STEPS[index] if 0 <= index < len(STEPS) else None
