"""Teacher: which model writes the answers, to what prompts, with live, pausable progress.

Generation runs as a child job, ``python -m engine generate --plan PLAN`` (the
wizard's plan written beside the answers as ``<output>.generate.toml``, its library
output in ``<output>.generate.log``); the key reaches it only through the environment,
as the teacher always reads it. Its events arrive as :class:`~tui.child.JobEvent`
messages, progress replacing progress, so a fast teacher never floods the UI. Pausing
sends it SIGTERM: it stops once the answers in flight are saved; generating again
starts a new child, which skips every prompt already answered in the output file.

The footer has room for the step's keys at 80 columns because it shows only
those that apply now: Generate or Pause, and a field's own key (ctrl+l lists
models from the Model field, ctrl+f browses from the Prompt file and Documents
fields).

Prompts come from one of three sources: a prompt file, a topic, or documents
(files or a folder the teacher writes questions on, then answers from). For
documents, a preview of the first chunks and their heading paths is read in a
thread worker whenever the path changes, so the user sees what the teacher will
be shown before paying for it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, OptionList, ProgressBar, Static

from engine import events as ev
from engine.fileio import atomic_write_text
from engine.i18n import N_, _
from engine.teacher.providers import PRESETS, endpoint_for
from tui.child import ChildJob, JobEvent, run_piped, stop
from tui.screens.base import StepScreen
from tui.screens.file_picker import DOCUMENT_SUFFIXES, FilePicker, fill
from tui.widgets.footer import Footer
from tui.widgets.knob import Knob
from tui.wording import money

if TYPE_CHECKING:
    from engine.errors import UserError
    from engine.plan import TeacherPlan
    from engine.teacher.documents.job import Corpus

# action -> the knobs whose key it is: active (and in the footer) while one of them has focus
FIELD_KEYS = {
    "list_models": ("#knob-teacher-model",),
    "browse": ("#knob-teacher-prompts", "#knob-teacher-documents"),
}
PREVIEW_CHUNKS = 3  # chunks the documents preview shows, one line each
PREVIEW_WIDTH = 76  # characters of a preview line: one line at 80 columns
# The keys a test call or a generation error is about: changing one makes that error stale.
ENDPOINT_KEYS = {"teacher.provider", "teacher.model", "teacher.base_url", "teacher.api_key_env"}
# The engine's hints name `stillroom generate` flags; in the wizard they are fields (or keys).
FIELDS = [
    (r"--api-key-env ''", N_("an empty Key variable field")),
    (r"`stillroom generate --list-models` shows the ids", N_("ctrl+l in Model lists the ids")),
    (
        r"--prompts FILE, or --topic TEXT --count N",
        N_("a Prompt file, a topic and Questions, or Documents"),
    ),
    (r"--api-key-env", N_("the Key variable field")),
    (r"--base-url", N_("the Base URL field")),
    (r"--model", N_("the Model field")),
    (r"--out", N_("the Output field")),
    (r"\bPass (?=the|a |an )", "Give "),
    (r"run the same command again", N_("generate again (ctrl+r)")),
]


class TeacherScreen(StepScreen):
    """Provider, model, key check, prompts, and the generation job."""

    STEP = "teacher"
    BINDINGS = [
        Binding("ctrl+t", "test_call", N_("Test call"), priority=True),
        Binding("ctrl+r", "generate", N_("Generate"), priority=True),
        Binding("ctrl+s", "pause", N_("Pause"), priority=True),
        Binding("ctrl+l", "list_models", N_("Models"), priority=True),
        Binding("ctrl+f", "browse", N_("Browse"), priority=True),
    ]

    class Previewed(Message):
        """The documents preview came back: what was read, or ``error`` (one line)."""

        def __init__(self, corpus: Corpus | None, error: str | None = None) -> None:
            super().__init__()
            self.corpus = corpus
            self.error = error

    class Tested(Message):
        """The test call came back: ``ok`` and one line saying what it found."""

        def __init__(self, ok: bool, text: str) -> None:
            super().__init__()
            self.ok = ok
            self.text = text

    class ModelsListed(Message):
        """The endpoint's models, or ``error`` (one line with its hint) when it could not say."""

        def __init__(self, models: list[str], error: str | None = None) -> None:
            super().__init__()
            self.models = models
            self.error = error

    def __init__(self) -> None:
        super().__init__()
        self.running = False
        self.pausing = False  # asked to pause: the child is stopped as soon as it is known
        self.child: ChildJob | None = None
        self.started: ev.Started | None = None
        self.result: ev.Result | None = None  # the last generation's paths and counts
        self.progress: ev.Progress | None = None

    def compose_body(self) -> ComposeResult:
        yield Static(
            _(
                "The teacher writes the answers the student learns. Skip this step (ctrl+n) "
                "if you bring your own dataset."
            ),
            classes="intro",
        )
        yield Knob(
            "teacher.provider",
            _("Provider"),
            _("a preset: URL, key variable, model"),
            choices=[(name, name) for name in PRESETS],
        )
        yield Knob("teacher.model", _("Model"), _("ctrl+l lists the endpoint's models"))
        yield Knob("teacher.base_url", _("Base URL"), _("any OpenAI-compatible endpoint"))
        yield Knob("teacher.api_key_env", _("Key variable"), "")
        yield Knob("teacher.prompts", _("Prompt file"), _("text/JSONL/dataset; ctrl+f browses"))
        yield Knob("teacher.topic", _("…or a topic"), _("the teacher writes questions on it"))
        yield Knob("teacher.count", _("Questions"), _("questions to write on the topic"))
        yield PathsKnob(
            "teacher.documents", _("…or documents"), _("a folder or file; ctrl+f browses")
        )
        yield Knob("teacher.questions_per_chunk", _("Questions/chunk"), _("on each piece of text"))
        yield Static("", id="documents-preview", markup=False)
        yield Knob("teacher.output", _("Output"), _("append-only JSONL; reruns resume it"))
        yield Knob("teacher.concurrency", _("Concurrency"), _("requests in flight at once"))
        yield Knob("teacher.max_tokens", _("Max tokens"), _("answer budget; too low cuts answers"))
        yield Knob("teacher.temperature", _("Temperature"), _("0 to 2; higher varies the answers"))
        yield Knob("teacher.budget_usd", _("Spending cap $"), _("stops once spent; empty: no cap"))
        with Horizontal(classes="buttons"):
            yield Button(_("Test call ^t"), id="test", compact=True)
            yield Button(_("Generate ^r"), id="generate", variant="primary", compact=True)
            yield Button(_("Pause ^s"), id="pause", compact=True, disabled=True)
        yield Static("", id="test-result")
        bar = ProgressBar(show_eta=False, id="generation-bar")
        bar.display = False  # until a generation starts: an idle bar would pulse for nothing
        yield bar
        yield Static(
            _("Not started. Generating again later resumes where it stopped."), id="progress"
        )

    def show_plan(self) -> None:
        super().show_plan()
        self._show_key_status()
        self._preview_documents()

    def plan_changed(self, key: str) -> None:
        if key in ("teacher.documents", "teacher.chunk_tokens"):
            self._preview_documents()
        if key == "teacher.provider":
            teacher = self.app.plan.teacher
            self.app.change("teacher", **endpoint_for(teacher.provider, teacher.base_url))
            self.show_plan()
        elif key == "teacher.api_key_env":
            self._show_key_status()
        if key in ENDPOINT_KEYS:
            self._forget_errors()

    def _forget_errors(self) -> None:
        """An error about the endpoint belongs to the settings it was made with: clear it."""
        result = self.query_one("#test-result", Static)
        if result.has_class("-error"):
            result.update("")
            result.remove_class("-error")
        progress = self.query_one("#progress", Static)
        if progress.has_class("-error"):
            progress.update(_("Settings changed: ctrl+t tests them, ctrl+r generates."))
            progress.remove_class("-error")

    def _show_key_status(self) -> None:
        """Whether the key's variable is set: the most common first-run failure, shown early."""
        name = self.app.plan.teacher.api_key_env
        if not name:
            text = _("no key: for local servers")
        elif os.environ.get(name, "").strip():
            text = _("✓ set in the environment")
        else:
            text = _("✗ not set: quit, export {name}=…, start again").format(name=name)
        self.query_one("#knob-teacher-api_key_env", Knob).explain(help=text)

    @on(Button.Pressed, "#test")
    def action_test_call(self) -> None:
        self.query_one("#test-result", Static).update(_("Calling the endpoint…"))
        self._test_call()

    @work(thread=True, exit_on_error=False, exclusive=True, group="test-call")
    def _test_call(self) -> None:
        from engine.errors import UserError

        teacher = self.app.plan.teacher
        try:
            models = served_models(teacher)
        except UserError as error:
            self.post_message(self.Tested(False, f"✗ {worded(error, teacher)}"))
            return
        url, model = teacher.base_url, teacher.model
        if not models:
            text = _("✓ {url} answered (it does not list its models)").format(url=url)
        elif teacher.model in models:
            text = _("✓ {url} answered and serves {model}").format(url=url, model=model)
        else:
            shown = ", ".join(models[:6])
            text = _("✗ {model} is not served; try: {models}").format(model=model, models=shown)
            self.post_message(self.Tested(False, text))
            return
        self.post_message(self.Tested(True, text))

    @on(Tested)
    def _tested(self, message: Tested) -> None:
        result = self.query_one("#test-result", Static)
        result.update(message.text)
        result.set_class(not message.ok, "-error")
        result.scroll_visible()  # at 80x24 the line sits below the settings

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in FIELD_KEYS:
            return any(self.query_one(knob).has_focus_within for knob in FIELD_KEYS[action])
        if action == "generate":
            return not self.running
        if action == "pause":
            return self.running
        return True

    def action_list_models(self) -> None:
        url = self.app.plan.teacher.base_url
        self.query_one("#test-result", Static).update(
            _("Asking {url} for its models…").format(url=url)
        )
        self._list_models()

    @work(thread=True, exit_on_error=False, exclusive=True, group="models")
    def _list_models(self) -> None:
        from engine.errors import UserError

        teacher = self.app.plan.teacher
        try:
            self.post_message(self.ModelsListed(served_models(teacher)))
        except UserError as error:
            self.post_message(self.ModelsListed([], f"✗ {worded(error, teacher)}"))

    @on(ModelsListed)
    def _models_listed(self, message: ModelsListed) -> None:
        """Offer what the endpoint serves; when it can't say, the provider preset's suggestions."""
        teacher = self.app.plan.teacher
        result = self.query_one("#test-result", Static)
        models, note = message.models, _("{url} serves:").format(url=teacher.base_url)
        if models:
            result.update(
                _("✓ {url} serves {count} model(s).").format(
                    url=teacher.base_url, count=len(models)
                )
            )
        else:
            models = list(PRESETS[teacher.provider].models)
            note = _("Not from the endpoint: the {provider} preset's suggestions:").format(
                provider=teacher.provider
            )
            result.update(message.error or _("✗ The endpoint does not list its models: type one."))
        result.set_class(not message.models, "-error")
        if models:
            self.app.push_screen(ModelPicker(models, teacher.model, note), self._model_picked)

    def _model_picked(self, model: str | None) -> None:
        if model is None:
            return
        self.app.change("teacher", model=model)
        self.show_plan()
        result = self.query_one("#test-result", Static)
        result.update(
            _("Model: {model}. Test call (ctrl+t) checks it answers.").format(model=model)
        )
        result.remove_class("-error")

    def action_browse(self) -> None:
        if self.query_one("#knob-teacher-documents").has_focus_within:
            picker = FilePicker(suffixes=DOCUMENT_SUFFIXES, folders=True)
            self.app.push_screen(picker, self._picked("#knob-teacher-documents"))
        else:
            self.app.push_screen(FilePicker(), self._picked("#knob-teacher-prompts"))

    def _picked(self, knob: str) -> Callable[[str | None], None]:
        def fill_in(path: str | None) -> None:
            if path is not None and fill(self.query_one(knob, Knob), path):
                self.plan_changed(self.query_one(knob, Knob).key)

        return fill_in

    def _preview_documents(self) -> None:
        preview = self.query_one("#documents-preview", Static)
        preview.display = bool(self.app.plan.teacher.documents)
        if preview.display:
            preview.update(_("Reading the documents…"))
            self._read_documents(self.app.plan.teacher)

    @work(thread=True, exit_on_error=False, exclusive=True, group="documents")
    def _read_documents(self, teacher: TeacherPlan) -> None:
        from engine.errors import UserError
        from engine.teacher.documents.job import read_corpus

        try:
            self.post_message(self.Previewed(read_corpus(teacher)))
        except UserError as error:
            self.post_message(self.Previewed(None, f"✗ {worded(error, teacher)}"))

    @on(Previewed)
    def _previewed(self, message: Previewed) -> None:
        preview = self.query_one("#documents-preview", Static)
        preview.set_class(message.corpus is None, "-error")
        preview.update(message.error or documents_preview(message.corpus))

    @on(Button.Pressed, "#generate")
    def action_generate(self) -> None:
        teacher = self.app.plan.teacher
        if not teacher.prompts and not teacher.topic and not teacher.documents:
            self.notify(
                _("Give a prompt file, a topic or documents first."),
                title=_("No prompts"),
                severity="error",
            )
            return
        if self.running:
            return
        plan, log = job_files(teacher.output)
        try:  # the settings as the wizard holds them; the key is only named there
            plan.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(plan, self.app.plan.to_toml())
        except OSError as error:
            self._show_error(_("cannot write {path}: {reason}").format(path=plan, reason=error))
            return
        self.pausing, self.child, self.started, self.result = False, None, None, None
        self._set_running(True)
        self.query_one("#progress", Static).update(_("Starting…"))
        self._generate(plan, log)

    @on(Button.Pressed, "#pause")
    def action_pause(self) -> None:
        if self.running:
            self.pausing = True
            if self.child is not None:
                stop(self.child)
            self.query_one("#progress", Static).update(
                _("Pausing: letting requests in flight finish…")
            )

    def on_unmount(self) -> None:
        """Leaving the app stops the child the same way, so nothing bought is lost."""
        if self.running and self.child is not None:
            stop(self.child)

    def _set_running(self, running: bool) -> None:
        self.running = running
        if running:  # show the bar and the line under it (below the settings at 80x24)
            self.query_one("#generation-bar").display = True
            self.call_after_refresh(self.query_one("#progress").scroll_visible, animate=False)
        self.query_one("#generate", Button).disabled = running
        self.query_one("#pause", Button).disabled = not running
        self.refresh_bindings()

    @work(thread=True, exit_on_error=False, exclusive=True, group="generate")
    def _generate(self, plan: Path, log: Path) -> None:
        run_piped("generate", ["--plan", str(plan)], plan.parent, log, self.post_message)

    @on(JobEvent)
    def _job_event(self, message: JobEvent) -> None:
        if message.job is not None and self.child is None:
            self.child = message.job
            if self.pausing:  # paused before the child said a word
                stop(message.job)
        event = message.event
        if isinstance(event, ev.Started):
            self.started = event
        elif isinstance(event, ev.Progress):
            self.progress = event
            self.query_one("#generation-bar", ProgressBar).update(
                total=event.total or None, progress=event.done
            )
            self.query_one("#progress", Static).update(progress_line(event))
        elif isinstance(event, ev.Warning):
            self.notify(f"{event.message} {event.hint}".strip(), severity="warning")
        elif isinstance(event, ev.Result):
            self.result = event
        elif event.type in ev.TERMINAL:
            self._ended(event)

    def _show_error(self, text: str) -> None:
        progress = self.query_one("#progress", Static)
        progress.update(f"✗ {text}")
        progress.add_class("-error")
        progress.scroll_visible()

    def _ended(self, event: ev.Event) -> None:
        """The child's one terminal event: what was answered, or the error and what to do."""
        self._set_running(False)
        if isinstance(event, ev.Error) and event.kind != "incomplete":
            self._show_error(worded(event, self.app.plan.teacher))
            return
        progress = self.query_one("#progress", Static)
        progress.scroll_visible()
        progress.remove_class("-error")
        if isinstance(event, ev.Finished):
            ended = _("Done")
        elif isinstance(event, ev.Cancelled):
            ended = _("Paused (ctrl+r resumes)") if self.pausing else _("Stopped at the budget")
        else:
            ended = _("Stopped with answers missing (ctrl+r retries them)")
        counts = self.result.counts if self.result else {}
        output = self.result.paths["answers"] if self.result else self.app.plan.teacher.output
        progress.update(
            _("{ended}: {done}/{total} answered, {failed} failed, written to {output}.").format(
                ended=ended,
                done=int(counts.get("done", 0)),
                total=int(counts.get("total", 0)),
                failed=int(counts.get("failed", 0)),
                output=output,
            )
            + spent_line(counts)
        )
        if counts.get("done") and self.app.plan.dataset.source != output:
            self.app.change("dataset", source=output, mapping=None, format=None)
            self.notify(_("The Data step now reads {output}.").format(output=output))


class ModelPicker(ModalScreen[str | None]):
    """Pick a model id with the keyboard; dismisses with it, or None on escape."""

    DEFAULT_CSS = """
    ModelPicker {
        align: center middle;
    }
    ModelPicker > Vertical {
        width: 100%;
        max-width: 60;
        height: auto;
        max-height: 20;
        border: thick $accent;
        padding: 0 1;
        background: $surface;
    }
    ModelPicker OptionList {
        height: auto;
        max-height: 14;
    }
    """

    BINDINGS = [Binding("escape", "dismiss", N_("Cancel"))]

    def __init__(self, models: list[str], current: str, note: str) -> None:
        super().__init__()
        self.models = models
        self.current = current
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.note, markup=False)
            yield OptionList(*self.models)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        if self.current in self.models:
            self.query_one(OptionList).highlighted = self.models.index(self.current)

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.models[event.option_index])


def served_models(teacher: TeacherPlan) -> list[str]:
    """What the endpoint serves (``GET /models``, key from the environment); [] if it won't say.

    Raises ``UserError`` saying what went wrong (no key, unreachable, refused). Call it
    from a thread worker: it runs its own event loop and imports openai.
    """
    import asyncio

    from engine.teacher.client import api_key, fetch_models, make_client

    async def ask(key: str) -> list[str]:
        client = make_client(teacher, key)
        try:
            return await fetch_models(client, teacher, key)
        finally:  # closed on this loop, never later by the garbage collector
            await client.close()

    return asyncio.run(ask(api_key(teacher)))


def job_files(output: str) -> tuple[Path, Path]:
    """Where a generation's plan and library output go: beside its answers."""
    out = Path(output)
    return out.with_name(out.stem + ".generate.toml"), out.with_name(out.stem + ".generate.log")


def worded(error: UserError | ev.Error, teacher: TeacherPlan) -> str:
    """The error and its hint as the wizard says them: fields and keys, not command flags.

    ``error`` is raised here (a test call) or said by the generation child.
    """
    if getattr(error, "kind", "") == "key":
        variable = teacher.api_key_env
        return _(
            "{variable} is not set. Quit, export {variable}=<your key> and start Stillroom "
            "again (the key is read from the environment, never stored); a server without "
            "a key needs none: empty the Key variable field."
        ).format(variable=variable)
    said = error.message if isinstance(error, ev.Error) else str(error)
    text = f"{said}. {error.hint}" if error.hint else said
    for flag, field in FIELDS:
        text = re.sub(flag, _(field), text)
    return text


class PathsKnob(Knob):
    """A knob for a list of paths: shows them joined; what is typed is one path."""

    def show(self, value: object) -> None:
        super().show(", ".join(value) if isinstance(value, list) else value)


def documents_preview(corpus: Corpus | None) -> str:
    """What was read, then the first chunks, each under its heading path."""
    if corpus is None:
        return ""
    lines = [corpus.describe()]
    for skipped in corpus.skipped[:3]:
        lines.append(_("skipped {file}: {reason}").format(file=skipped.file, reason=skipped.reason))
    for chunk in corpus.chunks[:PREVIEW_CHUNKS]:
        page = _(" (p. {page})").format(page=chunk.page) if chunk.page else ""
        line = f"▸ {chunk.heading}{page}: {' '.join(chunk.text.split())}"
        lines.append(line if len(line) <= PREVIEW_WIDTH else line[: PREVIEW_WIDTH - 1] + "…")
    return "\n".join(lines)


def spent_line(counts: dict[str, float]) -> str:
    """What the run spent, from its result's counts: the progress line's tokens and cost stay
    on screen once it ends. Empty where nothing was sent."""
    tokens = int(counts.get("prompt_tokens", 0) + counts.get("completion_tokens", 0))
    if not tokens:
        return ""
    return "\n" + _("This run: {tokens} tokens, cost {cost}.").format(
        tokens=f"{tokens:,}", cost=money(counts.get("cost_usd"))
    )


def progress_line(event: ev.Progress) -> str:
    """done/failed/in flight, tokens, cost and ETA in one line that fits 80 columns.

    While a documents job asks for questions (stage ``questions``), it counts chunks.
    """
    tokens = event.prompt_tokens + event.completion_tokens
    eta = "–" if event.eta_s is None else f"{event.eta_s:.0f}s"
    line = (
        _(
            "{done}/{total} chunks asked · {failed} failed · {in_flight} in flight"
            " · {tokens} tok · ${cost} · ETA {eta}"
        )
        if event.stage == "questions"
        else _(
            "{done}/{total} done · {failed} failed · {in_flight} in flight"
            " · {tokens} tok · ${cost} · ETA {eta}"
        )
    )
    return line.format(
        done=event.done,
        total=event.total,
        failed=event.failed,
        in_flight=event.in_flight,
        tokens=f"{tokens:,}",
        cost=f"{event.cost_usd:.4f}",
        eta=eta,
    )
