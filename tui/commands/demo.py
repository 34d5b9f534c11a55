"""``stillroom demo [DIR]``: the whole journey on any machine, in a few minutes.

It fills DIR with a small student, a textbook of invented facts about the town
of Marrowick and a plan, starts the demo teacher (a loopback server that knows
the town) for as long as the command runs, then opens the wizard at the Data
step, or with ``--no-wizard`` runs the tour headless: the teacher answers the
prompts, the student trains, and the base model and the student answer the same
questions, so the difference training made is plain to see.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.demo import folder as demo
from engine.demo import teacher as demo_teacher
from engine.errors import UserError
from engine.i18n import _

DEFAULT_DIR = "stillroom-demo"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help=_("try the whole journey on any machine: invented facts, a demo teacher, training"),
        description=_(
            "Fill DIR with a small student, a textbook of invented facts and a plan, start a "
            "demo teacher on this machine for as long as the demo runs, and open the wizard at "
            "the Data step. --no-wizard runs the tour headless: the teacher answers the prompts, "
            "the student trains (about two minutes on a laptop CPU), then the base model and "
            "the student answer questions about the facts. Run it again in DIR to continue."
        ),
    )
    parser.add_argument(
        "dir", nargs="?", default=DEFAULT_DIR, help=_("default: {dir}").format(dir=DEFAULT_DIR)
    )
    parser.add_argument(
        "--no-wizard", action="store_true", help=_("run the tour headless and print before/after")
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help=_(
            "fetch nothing: a cached student, else a tiny random one (HF_HUB_OFFLINE=1 keeps "
            "only the hub to its cache)"
        ),
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.demo_student import find_demo_student

    folder = Path(args.dir)
    if not args.no_wizard and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UserError(
            _("the demo's wizard needs a terminal (input or output is not one here)"),
            hint=_("Run the tour headless: {command}").format(
                command=f"stillroom demo {args.dir} --no-wizard"
            ),
        )
    demo.check_folder(folder)  # refusals come before any download
    # HF_HUB_OFFLINE keeps the hub to its cache; the package index is still asked, the way
    # through a firewall that passes it. --offline fetches nothing at all.
    student = find_demo_student(network=not args.offline, say=lambda line: print(line, flush=True))
    print(_("student: {path} ({label})").format(path=student.path, label=student.label), flush=True)
    demo.fill_folder(folder)
    with demo_teacher.DemoTeacher(demo.knowledge()) as server:
        os.environ[demo_teacher.KEY_ENV] = demo_teacher.KEY  # this process and its children
        write_demo_plan(folder / demo.PLAN, student.path, student.origin, server.base_url)
        print(
            _("demo teacher: {model} at {url} (free, while the demo runs)").format(
                model=demo_teacher.MODEL, url=server.base_url
            )
        )
        os.chdir(folder)
        if args.no_wizard:
            return tour(student.label, args.dir)
        from tui.app import run_wizard
        from tui.cli import wizard_theme

        run_wizard(demo.PLAN, wizard_theme(args.theme))
    print(
        _("The demo teacher has stopped. Continue the demo: {command}").format(
            command=f"stillroom demo {args.dir}"
        )
    )
    return 0


def write_demo_plan(path: Path, student: Path, origin: str, base_url: str) -> None:
    """The demo plan as the wizard's draft, open at the Data step.

    A draft from an earlier demo is kept as the user left it (step included); only
    the demo teacher's address, new each time, is brought up to date.
    """
    from engine.plan import PlanError
    from tui.draft import read_draft, write_draft

    try:
        plan, step = read_draft(path)
    except PlanError as error:
        raise UserError(
            str(error),
            hint=_("Fix it, or delete {path} to start the demo plan afresh.").format(path=path),
        ) from None
    if step is None:
        plan, step = demo.demo_plan(student, origin, base_url), "data"
    elif plan.teacher.model == demo_teacher.MODEL:
        plan.teacher.base_url = base_url
    write_draft(path, plan, step)


def tour(student_label: str, folder: str) -> int:
    """Generate, train (unless a finished run already learned these rows), then the
    before/after answers; run inside the demo folder."""
    from engine import runs

    generate = _("The demo teacher answers {prompts}, appending to {dataset}:").format(
        prompts=demo.PROMPTS, dataset=demo.DATASET
    )
    if code := _step(generate, ["generate", "--plan", demo.PLAN]):
        return code
    run_dir = trained_already(Path(demo.PLAN))
    if run_dir is not None:
        line = _(
            "The student learned the textbook in {run} already (the same plan and rows); "
            "to train again: {command}"
        ).format(run=run_dir, command=f"stillroom train {demo.PLAN}")
        print("\n" + line, flush=True)
    else:
        if code := _step(_("The student learns the textbook:"), ["train", demo.PLAN]):
            return code
        newest = runs.list_runs("runs")[0]
        if newest.state != "finished":
            raise UserError(
                _("the run {run} has not finished ({state})").format(
                    run=newest.name, state=newest.state
                ),
                hint=_("{command} follows it; then run the demo again.").format(
                    command=f"`stillroom attach {newest.path}`"
                ),
            )
        run_dir = Path(newest.path)
    _before_after(run_dir, student_label)
    print(
        _("See it in the wizard: {command} (ctrl+n to Chat; ctrl+t compares).").format(
            command=f"stillroom demo {folder}"
        )
    )
    return 0


def _step(note: str, command: list[str]) -> int:
    """One command of the tour, shown as a user would type it."""
    from tui.cli import main

    print(f"\n{note}\n$ stillroom {' '.join(command)}", flush=True)
    return main(command)


def trained_already(plan_path: Path) -> Path | None:
    """The newest run that finished training this plan's student, dataset and training
    settings on the dataset as it is now, so a re-run of the tour need not train again."""
    from engine import runs
    from engine.run_dir import RunDir
    from tui.draft import read_draft

    plan = runs.absolute_paths(read_draft(plan_path)[0])  # as a run records it
    wanted = {k: plan.to_dict()[k] for k in ("student", "dataset", "training")}
    source = Path(plan.dataset.source)
    changed = source.stat().st_mtime if source.is_file() else None
    for run in runs.list_runs(plan.output.runs_dir):
        if run.state != "finished" or not RunDir(run.path).trained:
            continue
        used = RunDir(run.path).plan().to_dict()
        same = all(used[k] == v for k, v in wanted.items())
        if same and changed is not None and run.started_at and changed <= run.started_at:
            return Path(run.path)
    return None


def _before_after(run_dir: Path, student_label: str) -> None:
    from engine.chat import load_student
    from engine.demo.teacher import normalise

    known = demo.knowledge()
    print("\n" + _("Before and after training ({label}):").format(label=student_label), flush=True)
    student = load_student(run_dir)
    from rich.cells import cell_len

    learned = {"base": 0, "student": 0}
    names = {"base": _("base"), "student": _("student")}
    width = max(8, *(cell_len(name) for name in names.values()))
    asked = [[{"role": "user", "content": question}] for question in demo.TOUR_QUESTIONS]
    answers = {
        who: student.answer_all(asked, base=who == "base", max_new_tokens=48) for who in learned
    }
    for n, question in enumerate(demo.TOUR_QUESTIONS):
        print("\n" + _("Q: {question}").format(question=question))
        print("   " + _("textbook: {answer}").format(answer=known[question]))
        for who in learned:
            text = answers[who][n].text.strip()
            learned[who] += normalise(known[question]) in normalise(text)
            name = names[who] + " " * (width - cell_len(names[who]))
            said = " ".join(text.split()) or _("(nothing)")
            print(f"   {name}: {said}", flush=True)
    total = len(demo.TOUR_QUESTIONS)
    print(
        "\n"
        + _(
            "The student gives the textbook's answer to {student} of {total} questions; "
            "the base model to {base} of {total}."
        ).format(student=learned["student"], base=learned["base"], total=total)
    )
