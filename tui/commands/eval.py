"""``stillroom eval``: base vs student on held-out prompts, scored against the teacher."""

from __future__ import annotations

import argparse
import sys

from tui.commands.chat import add_run_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="did distillation work? base vs student on held-out prompts",
        description=(
            "Answer RUN's held-out prompts (or the dataset's last N rows when none were held "
            "out) with the base model and the student, and score both against the teacher's "
            "answers: token F1, ROUGE-L, length, answers cut by the budget, answers ending "
            "cleanly. Writes RUN/eval/report.json and report.md."
        ),
    )
    add_run_arguments(parser)
    parser.add_argument("--n", type=int, default=None, help="at most N prompts (default: all)")
    parser.add_argument(
        "--judge", action="store_true", help="also have the teacher grade both answers blind"
    )
    parser.add_argument(
        "--max-new-tokens", type=int, default=None, help="answer budget (default: 1024)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.chat import resolve_run
    from engine.evaluate import evaluate, metric_lines

    run_dir = resolve_run(args.run, args.runs_dir)

    def progress(done: int, total: int) -> None:
        print(f"\ranswered {done}/{total}", end="", file=sys.stderr, flush=True)

    report = evaluate(
        run_dir, n=args.n, judge=args.judge, max_new_tokens=args.max_new_tokens, progress=progress
    )
    print(file=sys.stderr)
    print(f"{report['rows']} prompts from {report['source']}")
    width = max(len(label) for label, _, _ in metric_lines(report))
    print(f"{'':{width}}  {'base':>8}  {'student':>8}")
    for label, base, student in metric_lines(report):
        print(f"{label:{width}}  {base:>8}  {student:>8}")
    for note in report["notes"]:
        print(note)
    print(f"report: {run_dir / 'eval' / 'report.md'}")
    return 0
