"""``stillroom inspect``: read a dataset, say what it is and what is wrong with it."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from engine.errors import UserError

if TYPE_CHECKING:
    from rich.console import Console

    from engine.data.inspect import InspectReport

_FORMATS = ("auto", "alpaca", "sharegpt", "messages", "pair", "text")
_SAMPLE_CHARS = 1500
_BAR_WIDTH = 40


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="detect a dataset's format and column mapping, and list its problems",
        description=(
            "Load a dataset (a local JSON, JSONL, CSV, TSV or Parquet file, or a hub id "
            "owner/name), detect its format, propose a column mapping and list problems. "
            "Name the student model to also see token lengths and which tokens are trained."
        ),
    )
    parser.add_argument("source", help="data file, or hub dataset id such as yahma/alpaca-cleaned")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.add_argument("--split", help="split expression for hub datasets, e.g. 'train[:1%%]'")
    parser.add_argument(
        "--map",
        metavar="K=V,...",
        type=parse_mapping,
        help="column mapping, e.g. prompt=question,response=answer",
    )
    parser.add_argument("--format", default="auto", choices=_FORMATS, help="skip detection")
    parser.add_argument("--model", help="student model (hub id or folder) for token lengths")
    parser.add_argument(
        "--max-seq-length", type=int, default=2048, metavar="N", help="token limit per row"
    )
    parser.add_argument(
        "--overflow",
        choices=("drop", "truncate"),
        default="drop",
        help="rows longer than --max-seq-length: drop them, or truncate them",
    )
    parser.set_defaults(func=run)


def parse_mapping(text: str) -> dict[str, str]:
    """``prompt=question,response=answer`` as a dict; the TUI builds the same dict directly."""
    mapping = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, column = item.partition("=")
        if not sep or not key.strip() or not column.strip():
            raise argparse.ArgumentTypeError(f"{item!r} is not KEY=COLUMN")
        mapping[key.strip()] = column.strip()
    return mapping


def run(args: argparse.Namespace) -> int:
    from engine.data.inspect import inspect_source

    if args.max_seq_length < 16:
        raise UserError(f"--max-seq-length {args.max_seq_length} is too small (at least 16)")
    report = inspect_source(
        args.source,
        split=args.split,
        format=args.format,
        mapping=args.map,
        model=args.model,
        max_seq_length=args.max_seq_length,
        overflow=args.overflow,
    )
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        from rich.console import Console

        print_report(report, Console(highlight=False))
    return 0


def print_report(report: InspectReport, console: Console) -> None:
    """The human-readable report: what was read, how, a sample, problems, lengths."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    tally = report.tally
    parts: list = [
        (f"{tally.records if tally else report.rows:,}", "bold"),
        f" rows ({report.kind})  ·  ",
        (f"{report.usable_rows:,}", "bold green" if report.usable_rows else "bold red"),
        " usable  ·  ",
    ]
    if tally and tally.unusable:
        parts += [(f"{tally.unusable:,} unusable ({tally.share:.0%})", "bold yellow"), "  ·  "]
    parts += ["format ", (report.format, "bold cyan" if report.format != "unknown" else "bold red")]
    headline = Text.assemble(*parts)
    console.print(Panel(headline, title=report.source, title_align="left", expand=False))

    roles = {column: key for key, column in report.mapping.items()}
    columns = Table(title="Columns", title_justify="left", box=None, padding=(0, 2))
    columns.add_column("column", style="bold")
    columns.add_column("holds")
    columns.add_column("used as", style="cyan")
    for name in report.columns:
        columns.add_row(name, report.column_kinds.get(name, ""), roles.get(name, "-"))
    console.print(columns)
    console.print()
    console.print(Text(report.evidence, style="italic"))
    console.print()

    if report.preview or report.sample:
        console.print(_sample(report))
    if report.gate:
        console.print(
            Panel(Text(report.gate), title="Training would refuse this data", border_style="red")
        )
    if report.problems:
        console.print(_problems(report))
    else:
        console.print(Text("No problems found.", style="green"))
    if report.tokens:
        console.print(_lengths(report))


def _sample(report: InspectReport):
    from rich.panel import Panel
    from rich.text import Text

    text = Text()
    if report.preview:
        title = "Sample as the student sees it (trained tokens highlighted)"
        for piece, trained in report.preview:
            text.append(piece, style="black on green" if trained else "dim")
    else:
        title = "Sample (answers are what the student learns; --model shows the tokens)"
        for message in report.sample or []:
            trained = message["role"] == "assistant"
            text.append(f"{message['role']}: ", style="bold")
            text.append(message["content"] + "\n", style="green" if trained else "")
    if len(text) > _SAMPLE_CHARS:
        text.truncate(_SAMPLE_CHARS)
        text.append(" …", style="bold")
    text.rstrip()
    return Panel(text, title=title, title_align="left")


def _problems(report: InspectReport):
    from rich.table import Table

    table = Table(title="Problems", title_justify="left", show_lines=False, expand=True)
    table.add_column("problem", style="bold yellow", no_wrap=True)
    table.add_column("rows", justify="right")
    table.add_column("first rows", no_wrap=True)
    table.add_column("what it means and what to do", ratio=1)
    for problem in report.problems:
        first = ", ".join(map(str, problem.rows)) + (
            " …" if problem.count > len(problem.rows) else ""
        )
        table.add_row(problem.kind, f"{problem.count:,}", first, problem.message)
    return table


def _lengths(report: InspectReport):
    from rich.table import Table
    from rich.text import Text

    tokens = report.tokens or {}
    table = Table(
        title=f"Token lengths with {report.model} (max_seq_length {report.max_seq_length})",
        title_justify="left",
        box=None,
        padding=(0, 1),
    )
    table.add_column("tokens", justify="right")
    table.add_column("rows", justify="right")
    table.add_column("")
    peak = max((n for _, _, n in report.histogram or []), default=0) or 1
    for lo, hi, count in report.histogram or []:
        over = lo > (report.max_seq_length or 0)
        bar = Text("█" * max(1 if count else 0, round(_BAR_WIDTH * count / peak)))
        bar.stylize("red" if over else "cyan")
        table.add_row(f"{lo}-{hi}" if hi > lo else f"{lo}", f"{count:,}", bar)
    stats = "  ".join(f"{key} {tokens[key]:,}" for key in ("min", "median", "p95", "max"))
    table.caption = f"{stats}  ·  too long: {tokens.get('too_long', 0):,}"
    table.caption_justify = "left"
    return table
