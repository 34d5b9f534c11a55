"""``stillroom inspect``: read a dataset, say what it is and what is wrong with it."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from engine.errors import UserError
from engine.i18n import _

if TYPE_CHECKING:
    from rich.console import Console

    from engine.data.inspect import InspectReport

_FORMATS = ("auto", "alpaca", "sharegpt", "messages", "pair", "text")
_SAMPLE_CHARS = 1500
_BAR_WIDTH = 40


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help=_("detect a dataset's format and column mapping, and list its problems"),
        description=_(
            "Load a dataset (a local JSON, JSONL, CSV, TSV or Parquet file, or a hub id "
            "owner/name), detect its format, propose a column mapping and list problems. "
            "Name the student model to also see token lengths and which tokens are trained."
        ),
    )
    parser.add_argument(
        "source", help=_("data file, or hub dataset id such as yahma/alpaca-cleaned")
    )
    parser.add_argument(
        "--json", action="store_true", help=_("print one JSON object instead (keys stay English)")
    )
    parser.add_argument("--split", help=_("split expression for hub datasets, e.g. 'train[:1%%]'"))
    parser.add_argument(
        "--map",
        metavar="K=V,...",
        type=parse_mapping,
        help=_("column mapping, e.g. prompt=question,response=answer"),
    )
    parser.add_argument("--format", default="auto", choices=_FORMATS, help=_("skip detection"))
    parser.add_argument("--model", help=_("student model (hub id or folder) for token lengths"))
    parser.add_argument(
        "--model-source",
        choices=("huggingface", "modelscope"),
        default="huggingface",
        help=_("where --model's hub id is downloaded from (as student.source in a plan)"),
    )
    parser.add_argument(
        "--max-seq-length", type=int, default=2048, metavar="N", help=_("token limit per row")
    )
    parser.add_argument(
        "--overflow",
        choices=("drop", "truncate"),
        default="drop",
        help=_("rows longer than --max-seq-length: drop them, or truncate them"),
    )
    parser.set_defaults(func=run)


def parse_mapping(text: str) -> dict[str, str]:
    """``prompt=question,response=answer`` as a dict; the TUI builds the same dict directly."""
    mapping = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, column = item.partition("=")
        if not sep or not key.strip() or not column.strip():
            raise argparse.ArgumentTypeError(_("{item} is not KEY=COLUMN").format(item=repr(item)))
        mapping[key.strip()] = column.strip()
    return mapping


def run(args: argparse.Namespace) -> int:
    from engine.data.inspect import inspect_source

    if args.max_seq_length < 16:
        raise UserError(
            _("--max-seq-length {value} is too small (at least 16)").format(
                value=args.max_seq_length
            )
        )
    report = inspect_source(
        args.source,
        split=args.split,
        format=args.format,
        mapping=args.map,
        model=args.model,
        max_seq_length=args.max_seq_length,
        overflow=args.overflow,
        model_source=args.model_source,
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
    rows = tally.records if tally else report.rows
    parts: list = [
        (_("{count} rows ({kind})").format(count=f"{rows:,}", kind=report.kind), "bold"),
        "  ·  ",
        (
            _("{count} usable").format(count=f"{report.usable_rows:,}"),
            "bold green" if report.usable_rows else "bold red",
        ),
        "  ·  ",
    ]
    if tally and tally.unusable:
        unusable = _("{count} unusable ({share})").format(
            count=f"{tally.unusable:,}", share=f"{tally.share:.0%}"
        )
        parts += [(unusable, "bold yellow"), "  ·  "]
    style = "bold cyan" if report.format != "unknown" else "bold red"
    parts += [(_("format {name}").format(name=report.format), style)]
    headline = Text.assemble(*parts)
    console.print(Panel(headline, title=report.source, title_align="left", expand=False))

    roles = {column: key for key, column in report.mapping.items()}
    columns = Table(title=_("Columns"), title_justify="left", box=None, padding=(0, 2))
    columns.add_column(_("column"), style="bold")
    columns.add_column(_("holds"))
    columns.add_column(_("used as"), style="cyan")
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
            Panel(Text(report.gate), title=_("Training would refuse this data"), border_style="red")
        )
    if report.problems:
        console.print(_problems(report))
    else:
        console.print(Text(_("No problems found."), style="green"))
    if report.tokens:
        console.print(_lengths(report))


def _sample(report: InspectReport):
    from rich.panel import Panel
    from rich.text import Text

    text = Text()
    if report.preview:
        title = _("Sample as the student sees it (trained tokens highlighted)")
        for piece, trained in report.preview:
            text.append(piece, style="black on green" if trained else "dim")
    else:
        title = _("Sample (answers are what the student learns; --model shows the tokens)")
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

    table = Table(title=_("Problems"), title_justify="left", show_lines=False, expand=True)
    table.add_column(_("problem"), style="bold yellow", no_wrap=True)
    table.add_column(_("rows"), justify="right")
    table.add_column(_("first rows"), no_wrap=True)
    table.add_column(_("what it means and what to do"), ratio=1)
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
        title=_("Token lengths with {model} (max_seq_length {limit})").format(
            model=report.model, limit=report.max_seq_length
        ),
        title_justify="left",
        box=None,
        padding=(0, 1),
    )
    table.add_column(_("tokens"), justify="right")
    table.add_column(_("rows"), justify="right")
    table.add_column("")
    peak = max((n for _lo, _hi, n in report.histogram or []), default=0) or 1
    for lo, hi, count in report.histogram or []:
        over = lo > (report.max_seq_length or 0)
        bar = Text("█" * max(1 if count else 0, round(_BAR_WIDTH * count / peak)))
        bar.stylize("red" if over else "cyan")
        table.add_row(f"{lo}-{hi}" if hi > lo else f"{lo}", f"{count:,}", bar)
    stats = _("min {min}  median {median}  p95 {p95}  max {max}").format(
        **{key: f"{tokens[key]:,}" for key in ("min", "median", "p95", "max")}
    )
    too_long = _("too long: {count}").format(count=f"{tokens.get('too_long', 0):,}")
    table.caption = f"{stats}  ·  {too_long}"
    table.caption_justify = "left"
    return table
