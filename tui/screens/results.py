"""What a trained run is worth and how to ship it: the evaluation report and the export.

Both run as a child job (``python -m engine eval`` / ``export``) through
:class:`ChildLog`, so the TUI never imports torch. The child's events arrive as
:class:`~tui.child.JobEvent`; on ``finished`` the screens read what it left behind
(``eval/report.json``, ``parity.json``), and an ``error`` is shown with its hint.
A child outlives its screen: closing one while it runs lets it finish.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, RadioSet, Static

from engine import events as ev
from engine.chat import DEFAULT_MAX_NEW_TOKENS
from engine.errors import UserError
from engine.evaluate import (
    EVAL_DIR,
    EXAMPLES_SHOWN,
    MODELS,
    headline,
    metric_lines,
    retention_lines,
)
from engine.export import FORMATS
from engine.export_target import check_export_target, default_export_dir
from engine.i18n import N_, _
from engine.run_dir import RunDir
from tui.child import JobEvent
from tui.widgets.chat_log import WHO
from tui.widgets.child_log import ChildLog
from tui.widgets.choice_button import ChoiceButton
from tui.widgets.footer import Footer

# Fewer held-out prompts than this and the scores say more about the prompts than the model.
MIN_PROMPTS = 5

FORMAT_NOTES = {
    "adapter": N_("the LoRA adapter, tokenizer and a model card"),
    "merged": N_("one 16-bit model that plain transformers loads"),
    "gguf": N_("a GGUF file and an Ollama Modelfile (needs llama.cpp)"),
}


def shown(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it: short on screen."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class ChildScreen(ModalScreen[None]):
    """A whole-window dialog about one run that runs one ``stillroom`` child at a time."""

    DEFAULT_CSS = """
    ChildScreen > Vertical {
        border: round $accent;
        border-title-style: bold;
        background: $surface;
        padding: 0 1;
    }
    ChildScreen .options {
        height: auto;
        margin-top: 1;
    }
    ChildScreen .options Input {
        width: 12;
        margin-right: 2;
    }
    ChildScreen #results-status {
        margin-top: 1;
    }
    ChildScreen ChildLog {
        display: none;
    }
    ChildScreen ChildLog.-shown {
        display: block;
    }
    ChildScreen #results-status.-error {
        color: $text-error;
    }
    ChildScreen #results-status.-ok {
        color: $text-success;
    }
    """
    BINDINGS = [Binding("escape", "close", N_("Close"))]
    WHAT = ""  # the child's job in words (N_), for the notice when the screen closes on it
    JOB = ""  # python -m engine JOB; its whole output goes to RUN/JOB.log

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = Path(run_dir)
        self.result: ev.Result | None = None

    @property
    def log_path(self) -> Path:
        return RunDir(self.run_dir).job_log(self.JOB)

    @property
    def running(self) -> bool:
        return self.query_one(ChildLog).running

    def start(self, args: list[str], doing: str) -> None:
        self.show_status(_("{doing} in its own process; output below.").format(doing=doing))
        self.result = None
        output = self.query_one(ChildLog)
        output.add_class("-shown")
        output.start(self.JOB, args, self.run_dir)
        self.refresh_bindings()

    def show_status(self, text: str, state: str = "") -> None:
        status = self.query_one("#results-status", Static)
        status.update(text)
        status.set_class(state == "error", "-error")
        status.set_class(state == "ok", "-ok")

    def show_failure(self, error: ev.Error) -> None:
        hint = f"\n→ {error.hint}" if error.hint else ""
        self.show_status(f"✗ {error.message}{hint}", "error")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "run" and self.running:
            return None  # shown dimmed: one child at a time
        return True

    @on(JobEvent)
    def _job_event(self, message: JobEvent) -> None:
        event = message.event
        if isinstance(event, ev.Result):
            self.result = event
        elif isinstance(event, ev.Error):
            self.refresh_bindings()
            self.show_failure(event)
        elif isinstance(event, ev.Finished):
            self.refresh_bindings()
            self.child_finished()

    def child_finished(self) -> None:
        """The child finished its work; :attr:`result` says what it wrote."""
        raise NotImplementedError

    def action_close(self) -> None:
        if self.running:
            self.notify(
                _("The {what} goes on in its own process; its output is in {log}.").format(
                    what=_(self.WHAT), log=shown(self.log_path)
                ),
                timeout=8,
            )
        self.dismiss()


class EvalScreen(ChildScreen):
    """The run's report (base vs student against the teacher), and ctrl+r to evaluate again."""

    DEFAULT_CSS = """
    EvalScreen #eval-report {
        height: 1fr;
    }
    """
    BINDINGS = [Binding("ctrl+r", "run", N_("Evaluate"))]
    WHAT = N_("evaluation")
    JOB = "eval"

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir)
        self.report: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        with Vertical() as dialog:
            dialog.border_title = _("Evaluation of {run}").format(run=self.run_dir.name)
            with VerticalScroll(id="eval-report"):
                yield Static(id="eval-summary")
            with Horizontal(classes="options"):
                yield Label(_("rows") + " ")
                yield Input(placeholder=_("all"), type="integer", id="eval-rows", compact=True)
                yield Label(_("answer budget") + " ")
                yield Input(
                    placeholder=str(DEFAULT_MAX_NEW_TOKENS), type="integer", id="eval-tokens",
                    compact=True,
                )  # fmt: skip
                yield Label(_("tokens"))
            yield Static(id="results-status", markup=False)
            yield ChildLog()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#eval-report").focus()
        self.load_report()
        if self.report is None:
            self.show_status(
                _(
                    "No evaluation yet: ctrl+r answers the held-out prompts with the base model "
                    "and the student and scores both against the teacher's answers."
                )
            )
        else:
            report = shown(self.run_dir / EVAL_DIR / "report.md")
            again = _("Also in {report}; ctrl+r evaluates again.").format(report=report)
            self.show_status(again + self.too_few())

    def too_few(self) -> str:
        """A warning (on its own line) when the report rests on too few prompts, else ""."""
        warning = too_few_prompts(self.report) if self.report else None
        return f"\n! {warning}" if warning else ""

    def load_report(self) -> None:
        self.report = read_json(self.run_dir / EVAL_DIR / "report.json")
        self.query_one("#eval-summary", Static).update(
            render_report(self.report) if self.report else ""
        )

    def action_run(self) -> None:
        args = [str(self.run_dir)]
        for field, flag in (("#eval-rows", "--n"), ("#eval-tokens", "--max-new-tokens")):
            value = self.query_one(field, Input).value.strip()
            if value:
                args += [flag, value]
        self.start(
            args,
            _(
                "Evaluating: loading the models, answering each prompt twice, then the control "
                "prompts for retention,"
            ),
        )

    def child_finished(self) -> None:
        assert self.result is not None  # the eval job says where it wrote before it finishes
        self.load_report()
        self.query_one(ChildLog).remove_class("-shown")
        report = shown(Path(self.result.paths["markdown"]))
        warning = self.too_few()
        done = _("✓ evaluated; the report is also in {report}.").format(report=report)
        self.show_status(done + warning, "error" if warning else "ok")


def too_few_prompts(report: dict[str, Any]) -> str | None:
    """What to do when the scores rest on fewer than ``MIN_PROMPTS`` prompts."""
    rows = report["rows"]
    if rows >= MIN_PROMPTS:
        return None
    return _(
        "Only {rows} prompt(s): too few for these scores to mean much. Leave rows empty "
        "(all held-out prompts; `stillroom eval RUN --n N` headless), or hold out more with "
        "[dataset] eval_fraction in the plan (0.05 = 5%) and train again."
    ).format(rows=rows)


def render_report(report: dict[str, Any]) -> RenderableType:
    """The headline, the metrics table, the notes and retention, then the first examples."""
    metrics = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    metrics.add_column(_("metric"))
    for model in MODELS:
        metrics.add_column(_(WHO[model]) if model in WHO else model, justify="right")
    for row in metric_lines(report):
        metrics.add_row(*row)
    head = Text(
        _(
            "{rows} prompts from {source}; greedy answers of at most {tokens} tokens, "
            "scored against the teacher's."
        ).format(rows=report["rows"], source=report["source"], tokens=report["max_new_tokens"]),
        style="dim",
    )
    notes = [Text(f"• {note}", style="yellow") for note in report["notes"]]
    forgetting = (report.get("retention") or {}).get("forgetting")
    lines = retention_lines(report)  # when forgetting is flagged, its line comes last
    kept = [
        Text(line, style="bold red" if forgetting and n == len(lines) - 1 else "")
        for n, line in enumerate(lines)
    ]
    examples = [_example(n, item) for n, item in enumerate(report["items"][:EXAMPLES_SHOWN], 1)]
    title = Text(headline(report).capitalize(), style="bold")
    if forgetting:
        title.append(" · " + _("forgetting (see Retention below)"), style="bold red")
    return Group(title, head, metrics, *notes, *kept, *examples)


def _example(n: int, item: dict[str, Any]) -> Table:
    table = Table(
        title=f"{n}. {_short(item['messages'][-1]['content'])}",
        title_justify="left",
        title_style="bold",
        box=box.ROUNDED,
        expand=True,
    )
    table.add_column(_(WHO["teacher"]), ratio=1)
    answers = [item["answers"][model] for model in MODELS]
    for model, answer in zip(MODELS, answers, strict=True):
        name = _(WHO[model]) if model in WHO else model
        table.add_column(f"{name} · F1 {answer['f1']:.2f}", ratio=1)
    cut = " " + _("✂ cut")
    table.add_row(
        _short(item["reference"]),
        *(_short(a["text"]) + (cut if a["cut"] else "") for a in answers),
    )
    return table


def _short(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


class ExportScreen(ChildScreen):
    """Choose a format and a folder, export the run's student, then say where and how faithful."""

    DEFAULT_CSS = """
    ExportScreen #export-out {
        width: 1fr;
    }
    """
    BINDINGS = [Binding("ctrl+r", "run", N_("Export"))]
    WHAT = N_("export")
    JOB = "export"

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir)
        self.out: Path | None = None
        self.replace: tuple[Path, str] | None = None  # the export ctrl+r again would replace

    def compose(self) -> ComposeResult:
        with Vertical() as dialog:
            dialog.border_title = _("Export {run}").format(run=self.run_dir.name)
            yield Static(_("Format (↑↓ choose, enter picks; tab moves to the folder):"))
            with RadioSet(id="export-format"):
                for n, name in enumerate(FORMATS):
                    note = _(FORMAT_NOTES[name])
                    yield ChoiceButton(f"{name}: {note}", value=n == 0, name=name)
            with Horizontal(classes="options"):
                yield Label(_("folder") + " ")
                yield Input(placeholder=self.default_out("adapter"), id="export-out", compact=True)
            yield Static(id="results-status", markup=False)
            yield ChildLog()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(RadioSet).focus()
        self.show_status(_("ctrl+r exports; an empty folder means the default shown."))

    def default_out(self, format: str) -> str:
        return shown(default_export_dir(self.run_dir, format))

    @property
    def chosen_format(self) -> str:
        pressed = self.query_one(RadioSet).pressed_button
        return pressed.name if pressed and pressed.name else FORMATS[0]

    @on(RadioSet.Changed)
    def _format_changed(self) -> None:
        self.query_one("#export-out", Input).placeholder = self.default_out(self.chosen_format)

    def action_run(self) -> None:
        typed = self.query_one("#export-out", Input).value.strip()
        out = (
            Path(typed).expanduser()
            if typed
            else default_export_dir(self.run_dir, self.chosen_format)
        )
        force = self.replace == (out, self.chosen_format)
        try:  # the same check the child makes, so a refused folder is said before it starts
            check_export_target(out, self.chosen_format, self.run_dir, force=force)
        except UserError as error:
            self.refused(out, error)
            return
        self.out, self.replace = out, None
        args = [str(self.run_dir), "--format", self.chosen_format, "--out", str(out)]
        args += ["--force"] if force else []
        doing = _("Exporting {format} to {folder}").format(
            format=self.chosen_format, folder=shown(self.out)
        )
        self.start(args, doing)

    def refused(self, out: Path, error: UserError) -> None:
        """Say why ``out`` is refused; where it holds an export of another format (what
        ``--force`` replaces), a second ctrl+r replaces it."""
        try:
            check_export_target(out, self.chosen_format, self.run_dir, force=True)
        except UserError:
            self.replace = None
            self.show_status(f"✗ {error}\n→ {error.hint}", "error")
            return
        self.replace = (out, self.chosen_format)
        again = _("Press ctrl+r again to replace that export, or choose another folder.")
        self.show_status(f"✗ {error}\n→ {again}", "error")

    def child_finished(self) -> None:
        assert self.out is not None
        verdict, flagged = parity_verdict(self.out)
        mark, state = ("!", "error") if flagged else ("✓", "ok")
        written = _("{mark} written to {folder}").format(mark=mark, folder=shown(self.out))
        self.show_status(f"{written}\n{verdict}", state)


def parity_verdict(folder: Path) -> tuple[str, bool]:
    """What ``parity.json`` says in words, and whether the export answers differently."""
    parity = read_json(folder / "parity.json")
    if parity is None:
        return _("No parity check: the adapter is exactly what was trained."), False
    if parity["note"]:
        return _("Parity {note}").format(note=parity["note"]), False
    total = len(parity["items"])
    if parity["differing"]:
        return (
            _(
                "✗ PARITY FAILED: {differing} of {total} answers differ from base + "
                "adapter; see {file}"
            ).format(
                differing=parity["differing"], total=total, file=shown(folder / "parity.json")
            ),
            True,
        )
    return _("Parity: the same greedy answers as base + adapter on {total} prompts.").format(
        total=total
    ), False
