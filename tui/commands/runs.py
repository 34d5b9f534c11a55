"""``stillroom runs``: every run with its state, step, last loss and last evaluation.

A run whose events cannot be read is listed as ``unreadable`` with the reason,
and damaged event lines are counted; neither keeps the other runs from showing.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from engine.i18n import _, ngettext
from tui.wording import state_name

if TYPE_CHECKING:
    from engine.runs import RunStatus


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "runs", help=_("list runs: state, step, last loss, last evaluation")
    )
    parser.add_argument("--runs-dir", default="runs", help=_("default: runs"))
    parser.add_argument("--json", action="store_true", help=_("one JSON list, for scripts"))
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.evaluate import last_headline
    from engine.runs import list_runs

    found = list_runs(args.runs_dir)
    evaluated = [last_headline(r.path) for r in found]
    if args.json:
        listed = [r.to_dict() | {"eval": e} for r, e in zip(found, evaluated, strict=True)]
        print(json.dumps(listed, indent=2))
        return 0
    if not found:
        print(_("no runs in {folder}/").format(folder=args.runs_dir))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None)
    notes = [_note(r) for r in found]
    noted = any(notes)
    columns = [_("run"), _("state"), _("step"), _("loss"), _("backend"), _("last eval")]
    for column in columns + ([_("note")] if noted else []):
        table.add_column(column)
    for r, note, headline in zip(found, notes, evaluated, strict=True):
        step = f"{r.step}/{r.max_steps}" if r.max_steps else str(r.step)
        loss = f"{r.loss:.4f}" if r.loss is not None else "-"
        table.add_row(
            r.name,
            state_name(r.state),
            step,
            loss,
            r.backend,
            headline or "-",
            *([note] if noted else []),
        )
    Console().print(table)
    return 0


def _note(run: RunStatus) -> str:
    """What the columns cannot say: why a run is unreadable, how many lines were damaged."""
    parts = [run.message] if run.state == "unreadable" else []
    if run.damaged_lines:
        parts.append(
            ngettext(
                "{count} damaged line skipped", "{count} damaged lines skipped", run.damaged_lines
            ).format(count=run.damaged_lines)
        )
    return "; ".join(parts)
