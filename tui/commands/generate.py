"""``stillroom generate``: have the teacher write the training data, headless.

Flags override the plan's ``[teacher]`` section field by field, as the plan
overrides its provider's preset (``engine.teacher.providers.layered``). The
output file is appended to, one finished answer a line; running the same
command again asks only the prompts not yet answered. Exit 0 when every prompt has an answer, 1 when some
are still missing (failed, budget reached), 2 for a mistake to fix, 130 when
interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
from typing import TYPE_CHECKING, Any

from engine.errors import UserError
from engine.i18n import _
from engine.teacher.options import add_teacher_arguments, teacher_from_args
from tui.wording import money

if TYPE_CHECKING:
    from engine.plan import TeacherPlan
    from engine.teacher.documents.job import DocumentsEstimate
    from engine.teacher.generate import Estimate, Summary


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help=_("have the teacher answer prompts, writing a resumable JSONL dataset"),
        description=_(
            "Have the teacher model answer every prompt, appending one finished answer "
            "a line to --out. Run the same command again to finish an interrupted job: "
            "answered prompts are skipped, never paid for twice. The API key is read from "
            "the environment variable named by --api-key-env and is never written anywhere."
        ),
    )
    run = add_teacher_arguments(parser)
    run.add_argument(
        "--dry-run", action="store_true", help=_("estimate tokens and cost, send nothing")
    )
    run.add_argument(
        "--list-models", action="store_true", help=_("list the endpoint's models and exit")
    )
    run.add_argument(
        "--json", action="store_true", help=_("with --dry-run or --list-models: print JSON")
    )
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.json and not (args.dry_run or args.list_models):
        raise UserError(
            _("--json goes with --dry-run or --list-models"),
            hint=_("A real generation reports as it goes; its answers land in the --out file."),
        )
    teacher = teacher_from_args(args)
    if args.list_models:
        return _list_models(teacher, as_json=args.json)
    if args.dry_run:
        return _dry_run(teacher, as_json=args.json)
    return _generate(teacher)


def _dry_run(teacher: TeacherPlan, *, as_json: bool) -> int:
    """Forecast without sending: the documents job's two stages, or the prompts' answers."""
    if teacher.documents:
        from engine.teacher.documents.job import estimate as estimate_documents

        forecast: Any = estimate_documents(teacher)
        data, show = _documents_json, _print_documents_estimate
    else:
        from engine.teacher.generate import estimate

        forecast = estimate(teacher)
        data, show = _estimate_json, _print_estimate
    if as_json:
        print(json.dumps(data(teacher, forecast), indent=2))
    else:
        show(teacher, forecast)
    return 0


def _list_models(teacher: TeacherPlan, *, as_json: bool = False) -> int:
    import asyncio

    from engine.teacher.client import api_key, fetch_models, make_client

    async def fetch() -> list[str]:
        key = api_key(teacher)
        async with make_client(teacher, key) as client:
            return await fetch_models(client, teacher, key)

    models = asyncio.run(fetch())
    if as_json:
        print(json.dumps(models))
        return 0
    for model in models:
        print(model)
    return 0


def _cost_json(teacher: TeacherPlan, estimate: Estimate | DocumentsEstimate) -> dict[str, Any]:
    """The price used and what a forecast costs, as the end of a dry run's JSON."""
    from engine.teacher.providers import PRESETS

    price = estimate.price
    return {
        "price_per_mtok": None
        if price is None
        else {"input": price.input_per_mtok, "output": price.output_per_mtok},
        "prices_as_of": PRESETS[teacher.provider].prices_as_of,
        "cost_usd": estimate.cost_usd(),
        "cost_max_usd": estimate.cost_max_usd,
    }


def _estimate_json(teacher: TeacherPlan, estimate: Estimate) -> dict[str, Any]:
    """The dry run's forecast as plain data (the key is never in it, only its variable's name)."""
    return {
        "model": teacher.model,
        "base_url": teacher.base_url,
        "prompts": estimate.prompts,
        "already_answered": estimate.already,
        "to_send": estimate.to_send,
        "prompt_tokens": estimate.prompt_tokens,
        "completion_tokens": estimate.completion_tokens,
        "answer_tokens_each": estimate.answer_tokens_each,
        "answer_tokens_measured": estimate.answer_tokens_measured,
        **_cost_json(teacher, estimate),
    }


def _documents_json(teacher: TeacherPlan, estimate: DocumentsEstimate) -> dict[str, Any]:
    """The documents dry run as plain data: what was read, then both stages' tokens and cost."""
    corpus = estimate.corpus
    return {
        "model": teacher.model,
        "base_url": teacher.base_url,
        "documents": len(corpus.documents),
        "pages": corpus.pages,
        "chunks": len(corpus.chunks),
        "tokens": corpus.tokens,
        "skipped": [
            {"file": s.file, "reason": s.reason, "scanned": s.scanned} for s in corpus.skipped
        ],
        "questions": {
            "chunks_done": estimate.chunks_done,
            "requests": estimate.question_requests,
            "prompt_tokens": estimate.question_prompt_tokens,
            "completion_tokens": estimate.question_completion_tokens,
        },
        "answers": {
            "questions_known": estimate.questions_known,
            "already_answered": estimate.answers_done,
            "to_send": estimate.answers_to_send,
            "prompt_tokens": estimate.answer_prompt_tokens,
            "answer_tokens_each": estimate.answer_tokens_each,
            "answer_tokens_measured": estimate.answer_tokens_measured,
        },
        "prompt_tokens": estimate.prompt_tokens,
        "completion_tokens": estimate.completion_tokens,
        **_cost_json(teacher, estimate),
    }


def _print_documents_estimate(teacher: TeacherPlan, estimate: DocumentsEstimate) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    corpus = estimate.corpus
    title = _("Dry run: {model} at {url}").format(model=teacher.model, url=teacher.base_url)
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        (
            _("documents"),
            _("{n} ({pages} PDF pages)").format(n=len(corpus.documents), pages=corpus.pages),
        ),
        (
            _("chunks"),
            _("{n} of ~{size} tokens").format(n=len(corpus.chunks), size=teacher.chunk_tokens),
        ),
        (_("text tokens"), f"~{corpus.tokens:,}"),
        *((_("skipped"), escape(f"{s.file}: {s.reason}")) for s in corpus.skipped),
        (
            _("questions"),
            _("{n} chunks to ask ({done} asked before), {each} questions each").format(
                n=estimate.question_requests,
                done=estimate.chunks_done,
                each=teacher.questions_per_chunk,
            ),
        ),
        (
            _("answers"),
            _("~{n} to send ({done} answered before)").format(
                n=estimate.answers_to_send, done=estimate.answers_done
            ),
        ),
        (_("input tokens"), _("~{n} (both stages)").format(n=f"{estimate.prompt_tokens:,}")),
        (
            _("output tokens"),
            (
                _("~{n} ({each} an answer, mean of earlier answers)")
                if estimate.answer_tokens_measured
                else _("~{n} ({each} an answer, assumed)")
            ).format(n=f"{estimate.completion_tokens:,}", each=estimate.answer_tokens_each),
        ),
        (_("expected cost"), money(estimate.cost_usd())),
        (
            _("at most"),
            _("{cost} (every reply at max_tokens)").format(cost=money(estimate.cost_max_usd)),
        ),
    ]
    for label, value in rows:
        table.add_row(label, value)
    Console().print(table)


def _print_estimate(teacher: TeacherPlan, estimate: Estimate) -> None:
    from rich.console import Console
    from rich.table import Table

    from engine.teacher.providers import PRESETS

    title = _("Dry run: {model} at {url}").format(model=teacher.model, url=teacher.base_url)
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row(_("prompts"), f"{estimate.prompts:,}")
    if estimate.diversity is not None:
        table.add_row(_("diversity"), estimate.diversity.describe())
    table.add_row(_("already answered"), f"{estimate.already:,}")
    table.add_row(_("to send"), f"{estimate.to_send:,}")
    table.add_row(_("input tokens"), f"~{estimate.prompt_tokens:,}")
    each = {
        "total": f"{estimate.completion_tokens:,}",
        "tokens": f"{estimate.answer_tokens_each:,}",
    }
    output = (
        _("~{total} ({tokens} an answer, mean of earlier answers)").format(**each)
        if estimate.answer_tokens_measured
        else _("~{total} ({tokens} an answer, assumed)").format(**each)
    )
    table.add_row(_("output tokens"), output)
    if estimate.price is not None:
        table.add_row(
            _("price"),
            _(
                "${input} in / ${output} out per million tokens "
                "(table of {date}; plan keys override)"
            ).format(
                input=f"{estimate.price.input_per_mtok:g}",
                output=f"{estimate.price.output_per_mtok:g}",
                date=PRESETS[teacher.provider].prices_as_of,
            ),
        )
    table.add_row(_("expected cost"), money(estimate.cost_usd()))
    table.add_row(
        _("at most"),
        _("{cost} (every answer at max_tokens)").format(cost=money(estimate.cost_max_usd)),
    )
    Console().print(table)


def _generate(teacher: TeacherPlan) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from engine import events as ev
    from engine.teacher.generate import run

    console = Console(stderr=True)
    stop = {"requested": False}

    def on_signal(signum: int, frame: Any) -> None:
        if stop["requested"]:
            raise KeyboardInterrupt
        stop["requested"] = True
        message = _(
            "stopping: finishing the answers in flight (paid for already); "
            "press Ctrl-C again to abandon them"
        )
        console.print(f"[yellow]{message}[/]")

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        console=console,
        transient=True,
    )
    task = progress.add_task(_("connecting"), total=None, stats="")

    def emit(event: ev.Event) -> None:
        if isinstance(event, ev.Progress):
            eta = "" if event.eta_s is None else f" · ETA {_duration(event.eta_s)}"
            cost = f" · ${event.cost_usd:,.4f}" if event.cost_usd else ""
            first = _("failed {failed} · in flight {in_flight}").format(
                failed=event.failed, in_flight=event.in_flight
            )
            second = _("tokens {input} in / {output} out").format(
                input=f"{event.prompt_tokens:,}", output=f"{event.completion_tokens:,}"
            )
            elapsed = _("{time} elapsed").format(time=_duration(event.elapsed_s))
            stats = f"{first}{eta}\n{second}{cost} · {elapsed}"
            name = _("questions") if event.stage == "questions" else _("answers")
            progress.update(
                task, description=name, completed=event.done, total=event.total, stats=stats
            )
        elif isinstance(event, ev.Log):
            progress.console.print(event.line)
        elif isinstance(event, ev.Warning):
            label = "[yellow]" + _("warning:") + "[/]"
            progress.console.print(f"{label} {event.message}")
            if event.hint:
                progress.console.print(f"  {event.hint}")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with progress:
            summary = run(teacher, emit, lambda: stop["requested"])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if summary.total or summary.done:
        _print_summary(console, summary)
    if summary.error is not None:
        raise summary.error
    if summary.stopped == "cancelled":
        return 130
    if not summary.complete:
        missing = summary.total - summary.done
        if summary.failed_chunks:
            line = _("{n} chunks have no questions yet: the teacher's reply held none.")
            console.print(f"[red]{line.format(n=summary.failed_chunks)}[/]")
        console.print(
            _(
                "[red]{missing} of {total} prompts are not answered yet ({why}).[/] "
                "Run the same command again to finish them."
            ).format(missing=missing, total=summary.total, why=summary.stopped)
        )
        return 1
    return 0


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _print_summary(console: Any, summary: Summary) -> None:
    from rich.table import Table

    table = Table(title=_("Teacher generation"), show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row(_("output"), summary.output)
    if summary.corpus is not None:
        table.add_row(_("documents"), summary.corpus.describe())
        if summary.failed_chunks:
            failed = _("{n} (no usable questions)").format(n=summary.failed_chunks)
            table.add_row(_("chunks failed"), failed)
    table.add_row(_("prompts"), f"{summary.total:,}")
    table.add_row(
        _("answered"),
        _("{done} ({earlier} earlier, {now} now)").format(
            done=f"{summary.done:,}", earlier=f"{summary.already:,}", now=f"{summary.answered:,}"
        ),
    )
    table.add_row(
        _("failed"),
        f"{summary.failed:,}" + (f" ({summary.first_failure})" if summary.failed else ""),
    )
    if summary.flagged:
        flagged = ", ".join(f"{n} {flag}" for flag, n in summary.flagged.items())
        table.add_row(_("flagged"), flagged)
    table.add_row(_("retries"), f"{summary.retries:,}")
    table.add_row(
        _("tokens"),
        _("{input} in / {output} out (this run)").format(
            input=f"{summary.prompt_tokens:,}", output=f"{summary.completion_tokens:,}"
        ),
    )
    table.add_row(_("cost"), money(summary.cost_usd))
    table.add_row(_("time"), _duration(summary.elapsed_s))
    if summary.diversity is not None:
        table.add_row(_("diversity"), summary.diversity.describe())
    console.print(table)
