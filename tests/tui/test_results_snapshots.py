"""What the evaluation report and the export dialog look like.

The report is a fixed one written by the engine's own writer, so the capture
never depends on a model's answers or on how long anything took.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.evaluate import EvalItem, summarise, write_report
from engine.retention import CONTROL_SET
from engine.retention import summarise as retention
from tests.engine.training import FACTS
from tui.app import StillroomApp
from tui.screens.results import EvalScreen, ExportScreen

from . import scenes
from .conftest import SIZES_AND_LANGS, T4, no_gpu

SMALL, LARGE = (80, 24), (120, 40)
SIZES = SIZES_AND_LANGS
RUN = Path("runs/t-facts")
BASE_ANSWERS = [
    "I am not sure, but it could be the capital city of a country that I do not know about",
    "The Blue Heron is a bird. It lives near water and eats fish and frogs",
    "A lemon is a fruit.",
]


def write_facts_report(run_dir: Path) -> None:
    """A finished report on three facts: the student recalls them, the base model rambles; the
    student lost 8 of the 60 control answers the base gave (Paris first), so it is forgetting."""
    knew = [c.facts[0] if c.facts else "the same" for c in CONTROL_SET]
    lost = ["Saint-Germain."] + ["I do not know."] * 7 + knew[8:]
    items = []
    for (question, answer), base in zip(FACTS, BASE_ANSWERS, strict=False):
        student = {"text": answer, "tokens": 9, "cut": False, "ended_cleanly": True,
                   "f1": 1.0, "rouge_l": 1.0}  # fmt: skip
        cut = len(base) > 40
        rambling = {"text": base, "tokens": 40 if cut else 7, "cut": cut,
                    "ended_cleanly": not cut, "f1": 0.1, "rouge_l": 0.1}  # fmt: skip
        items.append(EvalItem([{"role": "user", "content": question}], answer,
                              {"base": rambling, "student": student}))  # fmt: skip
    write_report(run_dir, {
        "run": run_dir.name, "source": "3 held-out rows", "rows": len(items),
        "max_new_tokens": 40, "backend": "hf",
        "metrics": {model: summarise(items, model) for model in ("base", "student")},
        "notes": [], "items": [item.__dict__ for item in items],
        "retention": retention(knew, lost, CONTROL_SET),
    })  # fmt: skip


@pytest.fixture
def app(project: Path, speaking: str) -> StillroomApp:
    (project / RUN).mkdir(parents=True)
    return StillroomApp(Path("stillroom-plan.toml"), gpu_probe=lambda: T4, gpu_sampler=no_gpu)


async def eval_report(pilot) -> None:
    write_facts_report(RUN)
    await pilot.press("n")
    pilot.app.push_screen(EvalScreen(RUN))
    await scenes.settle(pilot)


async def export_dialog(pilot) -> None:
    await pilot.press("n")
    pilot.app.push_screen(ExportScreen(RUN))
    await scenes.settle(pilot)


@SIZES
def test_eval_report(snap_compare, app, size, lang):
    """You should see "Evaluation of t-facts" framed, the headline "Learned 3 of 3, kept 52 of
    60 · forgetting (see Retention below)", the metrics table with the student at
    token F1 1.000 against the base's 0.100 and 67% of base answers cut, "the student kept 52 of
    60 general answers (87%)" (at 120x40 also "Forgetting" and its fix), then the first
    example (Zorbia's capital) with teacher, base and student side by side; below, the rows
    and answer-budget fields, a warning that 3 prompts are too few and how to use more, and
    Close / Evaluate in the footer."""
    assert snap_compare(app, terminal_size=size, run_before=eval_report)


@SIZES
def test_export_dialog(snap_compare, app, size, lang):
    """You should see "Export t-facts" framed, adapter / merged / gguf with a line each
    (adapter picked: its mark ●, the others ○), the folder field showing runs/t-facts/export/adapter as its default,
    a line saying ctrl+r exports, and Close / Export in the footer."""
    assert snap_compare(app, terminal_size=size, run_before=export_dialog)
