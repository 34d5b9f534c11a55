"""Data: read a dataset, show what it is, fix its mapping, see what the student will learn.

Two workers, so the screen answers at once: the first reads, detects and checks
the data (pure Python, fast); the second loads the student's tokenizer (which
imports transformers, seconds) to render one sample with its trained tokens and
the length histogram. Each result carries the inputs it was made from, and a
result for inputs that have changed since is dropped.
"""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.cells import cell_len, set_cell_size
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from engine.errors import UserError
from engine.i18n import N_, _, ngettext
from engine.train.memory import TokenProfile
from tui.screens.base import StepScreen
from tui.screens.file_picker import FilePicker, fill
from tui.widgets.column_mapper import ColumnMapper
from tui.widgets.histogram import Histogram
from tui.widgets.knob import Knob
from tui.widgets.token_preview import TokenPreview

if TYPE_CHECKING:
    from engine.data.inspect import InspectReport
    from engine.data.types import Problem

PREVIEW_ROWS = 5
REPLAY_SHARES = (0.1, 0.2, 0.3)  # the Replay knob's choices besides off (a plan may hold others)
CELL_CHARS = 40
# problem kind -> (action, key, what pressing it does)
FIXES = {
    "too_long": [
        ("fit_length", "ctrl+l", N_("raise max_seq_length to fit every row")),
        ("toggle_overflow", "ctrl+o", N_("truncate long rows instead of dropping them")),
    ],
    "missing_response": [("ask_teacher", "ctrl+t", N_("have the teacher answer these prompts"))],
}


class DataScreen(StepScreen):
    """Source, preview table, detected format with evidence, mapper, problems, sample, lengths."""

    STEP = "data"
    BINDINGS = [
        Binding("ctrl+r", "inspect", N_("Read data"), priority=True),
        # Named in Source's help line: the footer has no room for it beside the fixes at 80 columns.
        Binding("ctrl+f", "browse", N_("Browse"), show=False, priority=True),
        Binding("ctrl+l", "fit_length", N_("Fit length"), priority=True),
        Binding("ctrl+o", "toggle_overflow", N_("Overflow"), priority=True),
        Binding("ctrl+t", "ask_teacher", N_("Ask teacher"), priority=True),
    ]

    class Inspected(Message):
        """A report for ``key`` (``rendered``: made with the student's tokenizer)."""

        def __init__(
            self, key: tuple, report: InspectReport, rows: list[dict[str, Any]] | None
        ) -> None:
            super().__init__()
            self.key = key
            self.report = report
            self.rows = rows

    class Failed(Message):
        """Reading (``stage`` = read) or rendering (``stage`` = render) failed."""

        def __init__(self, key: tuple, stage: str, error: UserError) -> None:
            super().__init__()
            self.key = key
            self.stage = stage
            self.error = error

    def __init__(self) -> None:
        super().__init__()
        self.report: InspectReport | None = None
        self.rendered = False
        self._key: tuple = ()

    def compose_body(self) -> ComposeResult:
        yield Knob("dataset.source", _("Source"), _("file or hub id; ctrl+f browses"))
        yield Knob("dataset.split", _("Split"), _("hub datasets only, e.g. train[:1%]"))
        yield Knob(
            "dataset.overflow",
            _("Long rows"),
            _("rows over max_seq_length"),
            choices=[("drop", "drop"), ("truncate", "truncate")],
        )
        yield Knob(
            "dataset.replay_fraction",
            _("Replay"),
            _("share written by the base model"),
            choices=[(_("off"), 0.0), *((f"{share:g}", share) for share in REPLAY_SHARES)],
        )
        yield Static(_("Press Enter in Source to read the data."), id="summary")
        yield ColumnMapper(id="mapper")
        yield DataTable(id="rows", show_cursor=False, zebra_stripes=True)
        yield Static(_("Problems"), classes="section")
        yield Static("–", id="problems")
        yield Static(_("One sample: highlighted tokens are trained"), classes="section")
        yield TokenPreview("–", id="sample")
        yield Static(_("Lengths in student tokens"), classes="section")
        yield Histogram(id="lengths")

    def on_mount(self) -> None:
        self.query_one(ColumnMapper).display = False  # until there are columns to map
        self.query_one("#rows").display = False

    def on_screen_resume(self) -> None:
        # StepScreen.on_screen_resume runs as well: Textual calls each class's handler.
        source = self.app.plan.dataset.source
        if self._inputs() != self._key and Path(source).expanduser().is_file():
            self.action_inspect()  # a hub id downloads: only when asked (ctrl+r)

    def _inputs(self) -> tuple:
        """What a report is read from: the plan's data keys, the student, and the source file's
        size and time, so a file that grew meanwhile (the teacher appends) is read again."""
        data, student = self.app.plan.dataset, self.app.plan.student
        mapping = tuple(sorted(data.mapping.items()))
        return (data.source, data.split, data.format, mapping, data.overflow, student.model,
                student.source, student.max_seq_length, _stamp(data.source))  # fmt: skip

    def plan_changed(self, key: str) -> None:
        if key == "dataset.overflow":
            self.action_inspect()
        elif key == "dataset.replay_fraction" and self.report is not None:
            self.query_one("#summary", Static).update(
                _summary(self.report) + _replay(self.report, self.app.plan)
            )

    @on(Input.Submitted, "#knob-dataset-source Input, #knob-dataset-split Input")
    def action_inspect(self) -> None:
        plan = self.app.plan
        if not plan.dataset.source:
            self.notify(_("Type a file path or a hub id in Source first."), severity="error")
            return
        self._key = self._inputs()
        self.rendered = False
        self.query_one("#summary", Static).update(
            _("Reading {source}…").format(source=plan.dataset.source)
        )
        self._read_data(self._key, plan)

    @work(thread=True, exit_on_error=False, exclusive=True, group="read")
    def _read_data(self, key: tuple, plan: Any) -> None:
        from engine.data.inspect import inspect_source
        from engine.data.load import read_table

        data = plan.dataset
        try:
            report = inspect_source(
                data.source, split=data.split, format=data.format, mapping=data.mapping or None
            )
            rows = read_table(data.source, data.split).rows[:PREVIEW_ROWS]
        except UserError as error:
            self.post_message(self.Failed(key, "read", error))
            return
        self.post_message(self.Inspected(key, report, rows))

    @work(thread=True, exit_on_error=False, exclusive=True, group="render")
    def _render_sample(self, key: tuple, plan: Any) -> None:
        from engine.data.inspect import inspect_source

        data, student = plan.dataset, plan.student
        try:
            report = inspect_source(
                data.source,
                split=data.split,
                format=data.format,
                mapping=data.mapping or None,
                model=student.model,
                max_seq_length=student.max_seq_length,
                overflow=data.overflow,
                model_source=student.source,
            )
        except UserError as error:
            self.post_message(self.Failed(key, "render", error))
            return
        self.post_message(self.Inspected(key, report, None))

    @on(Failed)
    def _failed(self, message: Failed) -> None:
        if message.key != self._key:
            return
        text = f"✗ {message.error} {message.error.hint}".strip()
        target = "#summary" if message.stage == "read" else "#sample"
        self.query_one(target, Static).update(text)
        self.query_one(target).add_class("-error")
        if message.stage == "read":
            self.report = None

    @on(Inspected)
    async def _inspected(self, message: Inspected) -> None:
        if message.key != self._key:
            return
        report = self.report = message.report
        self.app.data_rows = report.usable_rows
        self.query_one("#summary").remove_class("-error")
        self.query_one("#sample").remove_class("-error")
        self.query_one("#summary", Static).update(_summary(report) + _replay(report, self.app.plan))
        self._show_problems(report)
        if message.rows is not None:
            mapper = self.query_one(ColumnMapper)
            await mapper.show(report.format, report.columns, report.mapping)
            mapper.display = True
            self._show_rows(report.columns, message.rows)
            if report.format != "unknown" and report.usable_rows:
                self.query_one("#sample", TokenPreview).update(
                    _("Loading the {model} tokenizer…").format(model=self.app.plan.student.model)
                )
                self._render_sample(self._key, self.app.plan)
            else:
                self.query_one("#sample", TokenPreview).update("–")
            return
        self.rendered = True
        self._show_rendering(report)

    def _show_rows(self, columns: list[str], rows: list[dict[str, Any]]) -> None:
        table = self.query_one("#rows", DataTable)
        table.display = True
        table.clear(columns=True)
        table.add_columns(*columns)
        for row in rows:
            table.add_row(*(_cell(row.get(column)) for column in columns))

    def _show_problems(self, report: InspectReport) -> None:
        lines = []
        if report.format == "unknown":
            lines.append(_("Format unknown: pick the format and columns above."))
        if report.gate:
            lines.append(f"✗ {report.gate}")
        for problem in report.problems:
            lines.append(f"• {problem.message} ({_rows(problem)})")
            lines += [f"    {key}: {_(what)}" for _action, key, what in FIXES.get(problem.kind, [])]
        self.query_one("#problems", Static).update("\n".join(lines) or _("✓ None found."))
        self.refresh_bindings()

    def _show_rendering(self, report: InspectReport) -> None:
        if report.preview:
            self.query_one("#sample", TokenPreview).show_segments(report.preview)
        if report.histogram is not None:
            limit = self.app.plan.student.max_seq_length
            self.query_one(Histogram).show(report.histogram, limit)
        if report.tokens and report.tokens.get("max") is not None:
            tokens = report.tokens
            self.app.token_profile = TokenProfile(
                tokens["max"], tokens["p95"], float(tokens["median"])
            )

    @on(ColumnMapper.Changed)
    def _mapped(self, message: ColumnMapper.Changed) -> None:
        error = self.app.change("dataset", format=message.format, mapping=message.mapping)
        if error:
            self.notify(error, severity="error")
            return
        self.action_inspect()

    def _has(self, kind: str) -> bool:
        return bool(self.report and any(p.kind == kind for p in self.report.problems))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Fix keys work (and show in the footer) only while their problem is on screen;
        Browse only while Source has focus."""
        if action == "browse":
            return self.query_one("#knob-dataset-source").has_focus_within
        for kind, fixes in FIXES.items():
            if action in {name for name, _key, _what in fixes}:
                return self._has(kind)
        return True

    def action_browse(self) -> None:
        self.app.push_screen(FilePicker(), self._source_picked)

    def _source_picked(self, path: str | None) -> None:
        if path is not None and fill(self.query_one("#knob-dataset-source", Knob), path):
            self.action_inspect()

    def action_fit_length(self) -> None:
        longest = (self.report and self.report.tokens or {}).get("max")
        if longest:
            length = 1 << (int(longest) - 1).bit_length()
            self.app.change("student", max_seq_length=length)
            self.notify(_("max_seq_length is now {length}.").format(length=length))
            self.action_inspect()

    def action_toggle_overflow(self) -> None:
        policy = "truncate" if self.app.plan.dataset.overflow == "drop" else "drop"
        self.app.change("dataset", overflow=policy)
        self.show_plan()
        self.action_inspect()

    def action_ask_teacher(self) -> None:
        self.app.change("teacher", prompts=self.app.plan.dataset.source, topic=None)
        self.notify(_("The teacher step will answer these prompts: generate there (ctrl+r)."))
        self.app.switch_mode("teacher")

    def problems(self) -> list[str]:
        report = self.report
        if report is None:
            return [_("Read a dataset first: type its path in Source and press Enter.")]
        if report.format == "unknown":
            return [_("The format is unknown: pick it and the columns in the mapper.")]
        if not report.usable_rows:
            return [_("No usable rows: fix the mapping or the problems listed.")]
        if report.gate:
            return [report.gate]
        return []


def _summary(report: InspectReport) -> str:
    if report.format == "unknown":
        found = _("format unknown")
    else:
        found = _("format {format}").format(format=report.format)
    line = _("{kind} · {rows} rows, {usable} usable · {found}").format(
        kind=report.kind, rows=report.rows, usable=report.usable_rows, found=found
    )
    return f"{line}\n{report.evidence}"


def _replay(report: InspectReport, plan: Any) -> str:
    """The rows replay will add (see engine.replay), or nothing while it is off."""
    from engine.replay import replay_rows
    from engine.train.dataset import held_out_count

    data = plan.dataset
    usable = report.usable_rows
    count, asked = replay_rows(plan, usable - held_out_count(usable, data.eval_fraction))
    if not count:
        return ""
    if count < asked:
        line = _(
            "+ {count} replay rows written by the base model, so it keeps what it knew "
            "(capped at dataset.replay_max_rows = {count}; the share alone would add {asked})"
        )
    else:
        line = ngettext(
            "+ {count} replay row written by the base model, so it keeps what it knew "
            "(dataset.replay_fraction = {fraction}; 0 turns it off)",
            "+ {count} replay rows written by the base model, so it keeps what it knew "
            "(dataset.replay_fraction = {fraction}; 0 turns it off)",
            count,
        )
    return "\n" + line.format(count=count, asked=f"{asked:,}", fraction=f"{data.replay_fraction:g}")


def _rows(problem: Problem) -> str:
    """The rows it was found in, numbered as `stillroom inspect` numbers them."""
    rows = ", ".join(map(str, problem.rows))
    if problem.count > len(problem.rows):
        more = f"{problem.count - len(problem.rows):,}"
        return ngettext(
            "row {rows} and {more} more", "rows {rows} and {more} more", problem.count
        ).format(rows=rows, more=more)
    return ngettext("row {rows}", "rows {rows}", problem.count).format(rows=rows)


def _cell(value: Any) -> str:
    """A preview cell: the start of the value only, however long or deeply nested it is."""
    text = "" if value is None else value[: CELL_CHARS + 1] if isinstance(value, str) else None
    text = _CELL_REPR.repr(value) if text is None else text
    text = text.replace("\n", " ")
    # Cells, not characters: a Chinese character takes two columns.
    return text if cell_len(text) <= CELL_CHARS else set_cell_size(text, CELL_CHARS - 1) + "…"


_CELL_REPR = reprlib.Repr()
_CELL_REPR.maxlevel, _CELL_REPR.maxstring, _CELL_REPR.maxother = 3, CELL_CHARS, CELL_CHARS


def _stamp(source: str) -> tuple[int, int] | None:
    """A local source's modification time and size; ``None`` for a hub id."""
    try:
        status = Path(source).expanduser().stat()
    except (OSError, ValueError):
        return None
    return status.st_mtime_ns, status.st_size
