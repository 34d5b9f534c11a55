"""The demo folder: the bundled textbook and prompts copied in, and the demo's plan.

A folder is the demo's when it holds :data:`MARKER`; the demo writes only into
a new or empty folder or one of its own, so it never mixes with a user's files.
Running it again in its own folder reuses what is there: the textbook keeps the
teacher's answers, and a plan the user changed in the wizard is kept.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from engine.demo import teacher
from engine.errors import UserError
from engine.fileio import atomic_write_text, read_jsonl
from engine.i18n import _
from engine.plan import Plan, plan_from_dict

MARKER = ".stillroom-demo"
DATASET = "town.jsonl"  # the textbook: the bundled facts, then the teacher's answers
PROMPTS = "prompts.txt"
PLAN = "stillroom-plan.toml"  # the wizard's own draft name: `cd DIR && stillroom` resumes
MAX_SEQ_LENGTH = 128  # every fact fits with room to spare; the bundled charter row does not

# Questions the headless tour asks the base model and the student: two facts from the
# bundled textbook and one the demo teacher adds.
TOUR_QUESTIONS = (
    "Who founded Marrowick?",
    "What is Marrowick's local cheese called?",
    "What is the name of Marrowick's ferry?",
)

# Training per kind of student, measured on a 2-core box. The real 135M student: with the
# default replay (10 rows the base wrote, beside the textbook's), 50 steps of 8 at lr 2e-3
# took its loss to 0.006 and its answers to the textbook's, where 40 steps named the ferry
# after the cheese (without replay 40 were enough; 30 left it at 0.35, mixing names up);
# its CPU step took 2-9 s here (50 steps in 1:59 at a load of 2). A random two-layer
# student barely moves at that rate: it needs the test suite's 1e-2, and 200 steps (7 s).
TRAINING: dict[str, dict[str, Any]] = {
    "random": {"max_steps": 200, "learning_rate": 1e-2, "warmup_steps": 10, "logging_steps": 10},
    "model": {"max_steps": 50, "learning_rate": 2e-3, "warmup_steps": 3, "logging_steps": 1},
}


def bundled(name: str) -> Path:
    return Path(str(files("engine.demo").joinpath(name)))


def check_folder(folder: Path) -> None:
    """Refuse a file, or a folder that holds someone else's files."""
    if folder.exists() and not folder.is_dir():
        raise UserError(
            _("{folder} is a file").format(folder=folder),
            hint=_("Give `stillroom demo` a folder name."),
        )
    if folder.is_dir() and not (folder / MARKER).exists() and any(folder.iterdir()):
        raise UserError(
            _(
                "{folder} already holds files that are not the demo's; the demo writes only into a "
                "new or empty folder, or one it made"
            ).format(folder=folder),
            hint=_("Give another folder: stillroom demo {name}-2").format(name=folder.name),
        )


def fill_folder(folder: Path) -> None:
    """Create the folder with the textbook and the prompts; files already there are kept."""
    check_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / MARKER
    if not marker.exists():
        atomic_write_text(marker, "Made by `stillroom demo`; it may write here again.\n")
    for bundled_name, name in (("facts.jsonl", DATASET), ("prompts.txt", PROMPTS)):
        if not (folder / name).exists():
            atomic_write_text(folder / name, bundled(bundled_name).read_text(encoding="utf-8"))


def knowledge() -> dict[str, str]:
    """Every question the demo teacher can answer, with its answer."""
    known = {}
    for row in read_jsonl(bundled("facts.jsonl")):
        turns = [turn["value"] for turn in row["messages"]]
        if len(turns) == 2 and turns[1]:
            known[turns[0]] = turns[1]
    for row in read_jsonl(bundled("answers.jsonl")):
        known[row["prompt"]] = row["answer"]
    return known


def demo_plan(student_path: Path, origin: str, base_url: str) -> Plan:
    """The demo's plan: the demo teacher writes into the textbook the student learns."""
    training = TRAINING["random" if origin == "random" else "model"]
    return plan_from_dict(
        {
            "teacher": {
                "provider": "custom",
                "model": teacher.MODEL,
                "base_url": base_url,
                "api_key_env": teacher.KEY_ENV,
                "system": "",
                "prompts": PROMPTS,
                "output": DATASET,
                "concurrency": 4,
                "max_tokens": 256,
                "price_input_per_mtok": 0.0,
                "price_output_per_mtok": 0.0,
            },
            "dataset": {"source": DATASET, "eval_fraction": 0.0},
            "student": {
                "model": str(student_path),
                "max_seq_length": MAX_SEQ_LENGTH,
                "load_in_4bit": False,
            },
            "lora": {"r": 16, "alpha": 32},
            "training": {
                **training,
                "batch_size": 8,
                "grad_accum": 1,
                "optimizer": "adamw_torch",
                "save_steps": 1000,
            },
            "output": {"runs_dir": "runs", "name": "demo"},
        },
        "the demo plan",
    )
