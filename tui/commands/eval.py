"""``stillroom eval``: base vs student on held-out prompts, scored against the teacher."""

from __future__ import annotations

import argparse
import json
import sys
import time

from engine.errors import UserError
from engine.i18n import _
from tui.commands.chat import add_run_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help=_("did distillation work? base vs student on held-out prompts"),
        description=_(
            "Answer RUN's held-out prompts (or the dataset's rows when none were held out), "
            "each distinct prompt once and at most 50 chosen at random unless told otherwise, "
            "with the base model and the student, and score both against the teacher's "
            "answers: token F1, ROUGE-L, length, answers cut by the budget, answers ending "
            "cleanly. Then retention: about 60 general control prompts (cached base answers, then "
            "the student's), to show what the student kept of what the base knew. Writes "
            "RUN/eval/report.json and report.md."
        ),
    )
    add_run_arguments(parser)
    how_many = parser.add_mutually_exclusive_group()
    how_many.add_argument(
        "--n", type=int, default=None, help=_("at most N prompts, chosen at random (default: 50)")
    )
    how_many.add_argument(
        "--all", dest="everything", action="store_true", help=_("every distinct prompt")
    )
    parser.add_argument(
        "--judge", action="store_true", help=_("also have the teacher grade both answers blind")
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help=_("answer budget (default: 1.5x the longest teacher answer, at most 1024)"),
    )
    parser.add_argument(
        "--no-retention",
        dest="retention",
        action="store_false",
        help=_("skip the retention check on the built-in control prompts"),
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help=_("print the whole report (as RUN/eval/report.json) instead of the table"),
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.chat import resolve_run
    from engine.evaluate import evaluate, headline, metric_lines, retention_lines
    from engine.stdout import chatter_to_stderr
    from tui.wording import duration

    run_dir = resolve_run(args.run, args.runs_dir)
    if args.n is not None and args.n < 1:
        raise UserError(
            _("--n {n}: evaluate at least one prompt").format(n=args.n), hint=_("e.g. --n 20")
        )
    began: dict[str, float] = {}  # stage -> when it started, for its own time to go

    def progress(done: int, total: int, stage: str) -> None:
        if stage not in began:
            print(file=sys.stderr, end="\n" if began else "")
            began[stage] = time.monotonic()
        left = (time.monotonic() - began[stage]) / done * (total - done)
        if done < total:
            line = _("{stage}: answered {done}/{total}, about {time} to go").format(
                stage=stage, done=done, total=total, time=duration(left)
            )
        else:
            line = _("{stage}: answered {done}/{total}").format(stage=stage, done=done, total=total)
        print(f"\r{line}   ", end="", file=sys.stderr, flush=True)

    with chatter_to_stderr():
        report = evaluate(
            run_dir,
            n=args.n,
            everything=args.everything,
            judge=args.judge,
            max_new_tokens=args.max_new_tokens,
            retention=args.retention,
            progress=progress,
        )
    print(file=sys.stderr)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return 0
    print(f"{headline(report).capitalize()} ({report['learned']['rule']})")
    print(f"{report['source'][:1].upper()}{report['source'][1:]}")
    print(
        _("answer budget {tokens} tokens ({reason})").format(
            tokens=report["max_new_tokens"], reason=report["budget_reason"]
        )
    )
    print(_metric_table(metric_lines(report)))
    for note in report["notes"]:
        print(note)
    for line in retention_lines(report):
        print(line)
    for row in report.get("retention", {}).get("changed", []):
        print("  " + _("changed: {prompt}  base: {base}  student: {student}").format(
            prompt=row["prompt"], base=_flat(row["base"]), student=_flat(row["student"])
        ))  # fmt: skip
    print(_("report: {path}").format(path=run_dir / "eval" / "report.md"))
    return 0


def _metric_table(lines: list) -> str:
    """The metrics as aligned columns; widths in terminal cells, so Chinese labels line up."""
    from rich.cells import cell_len

    def pad(text: str, width: int, right: bool = False) -> str:
        gap = " " * max(0, width - cell_len(text))
        return gap + text if right else text + gap

    rows = [("", _("base"), _("student"))] + [tuple(map(str, r)) for r in lines]
    widths = [max(cell_len(row[i]) for row in rows) for i in range(3)]
    widths[1:] = [max(8, w) for w in widths[1:]]
    return "\n".join(
        f"{pad(a, widths[0])}  {pad(b, widths[1], True)}  {pad(c, widths[2], True)}"
        for a, b, c in rows
    )


def _flat(text: str, limit: int = 60) -> str:
    """One line of at most ``limit`` characters, for the terminal."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"
