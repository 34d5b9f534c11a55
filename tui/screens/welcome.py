"""Welcome: start a plan, continue the draft, open a plan file, or re-attach to a live run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.cells import set_cell_size
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from engine.i18n import LANGUAGES, N_, _, current_language
from engine.plan import Plan
from tui.screens.file_picker import PLAN_SUFFIXES, FilePicker
from tui.steps import step_named
from tui.widgets.footer import Footer
from tui.wording import state_name
from tui.worker_errors import ForwardsWorkerErrors

if TYPE_CHECKING:
    from engine.runs import RunStatus
    from tui.app import StillroomApp

INTRO = N_(
    "Distil a large teacher LLM into a small student model on one GPU.\n"
    "Teacher writes the answers, Data checks them, Student sizes the run to your GPU."
)


@dataclass(frozen=True)
class RunLine:
    """One run as the welcome screen lists it."""

    name: str
    state: str
    detail: str


class WelcomeScreen(ForwardsWorkerErrors, Screen[None]):
    """The first screen: every way into the wizard, each with a key."""

    BINDINGS = [
        Binding("n", "new_plan", N_("New plan")),
        Binding("c", "continue_draft", N_("Continue")),
        Binding("o", "open_plan", N_("Open plan")),
        Binding("a", "attach", N_("Re-attach")),
        # Shown in the choices (in both languages' own words), not in a full footer.
        Binding("l", "switch_language", N_("Language"), show=False),
    ]

    app: StillroomApp  # type: ignore[assignment]

    class RunsListed(Message):
        """The runs folder was read (in a worker)."""

        def __init__(self, runs: list[RunLine], live: str | None) -> None:
            super().__init__()
            self.runs = runs
            self.live = live

    def __init__(self) -> None:
        super().__init__()
        self.live_run: str | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="body"):
            yield Static("Stillroom", id="brand")
            yield Static(_(INTRO), id="intro")
            yield Static("", id="live")
            yield OptionList(id="choices")
            yield Static(_("Recent runs"), classes="section")
            yield Static(_("Reading the runs folder…"), id="runs")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#live").display = False
        self._fill_choices()
        self._list_runs(self.app.runs_dir)

    def on_screen_resume(self) -> None:
        self._fill_choices()
        self.query_one("#choices").focus()

    def _fill_choices(self) -> None:
        app = self.app
        options = [Option(_("n  New plan, from the reference notebook's defaults"), id="new")]
        if app.has_draft:
            step = _(step_named(app.step).title)
            line = _("c  Continue {path} (at the {step} step)").format(
                path=app.plan_path, step=step
            )
            options.insert(0, Option(line, id="continue"))
        options.append(Option(_("o  Open a plan file…"), id="open"))
        options.append(Option(language_line(), id="language"))
        if self.live_run:
            line = _("a  Re-attach to {run}, still training").format(run=self.live_run)
            options.insert(0, Option(line, id="attach"))
        choices = self.query_one("#choices", OptionList)
        choices.clear_options()
        choices.add_options(options)
        choices.highlighted = 0

    @work(thread=True, exit_on_error=False, exclusive=True, group="runs")
    def _list_runs(self, runs_dir: str) -> None:
        from engine.runs import LIVE, list_runs

        runs = list_runs(runs_dir)
        lines = [
            RunLine(r.name, r.state, r.message if r.state == "unreadable" else _detail(r))
            for r in runs[:5]
        ]
        live = next((r.name for r in runs if r.state in LIVE), None)
        self.post_message(self.RunsListed(lines, live))

    @on(RunsListed)
    def _show_runs(self, message: RunsListed) -> None:
        runs = self.query_one("#runs", Static)
        if not message.runs:
            runs.update(_("No runs yet in {folder}/.").format(folder=self.app.runs_dir))
        else:
            runs.update("\n".join(_run_line(run) for run in message.runs))
        self.live_run = message.live
        if message.live:
            live = self.query_one("#live", Static)
            live.update(
                _("{run} is still training. Press a to follow it live.").format(run=message.live)
            )
            live.display = True
            self._fill_choices()
            self.refresh_bindings()

    @on(OptionList.OptionSelected, "#choices")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        actions = {
            "new": self.action_new_plan,
            "continue": self.action_continue_draft,
            "open": self.action_open_plan,
            "attach": self.action_attach,
            "language": self.action_switch_language,
        }
        actions[event.option.id or "new"]()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys for choices that are not on offer stay out of the footer."""
        if action == "continue_draft":
            return self.app.has_draft
        if action == "attach":
            return self.live_run is not None
        return True

    def action_new_plan(self) -> None:
        self.app.start_plan(Plan(), new=True)
        self.notify(_("New plan; it is saved to {path} as you go.").format(path=self.app.plan_path))

    def action_continue_draft(self) -> None:
        if self.app.has_draft:
            self.app.switch_mode(self.app.step)

    def action_open_plan(self) -> None:
        self.app.push_screen(FilePicker(suffixes=PLAN_SUFFIXES), self._plan_picked)

    def _plan_picked(self, path: str | None) -> None:
        if path is None:
            return
        error = self.app.open_plan(path)
        if error:
            self.notify(error, title=_("Cannot open that plan"), severity="error")
        else:
            self.notify(
                _(
                    "Editing {path} in place: every change is saved there. "
                    "Next time: stillroom --plan {path}"
                ).format(path=path)
            )

    def action_attach(self) -> None:
        """Follow the live run on the Train step, inside the app."""
        if not self.live_run:
            self.notify(_("No run is training now."))
            return
        self.app.attach_run(Path(self.app.runs_dir) / self.live_run)

    async def action_switch_language(self) -> None:
        """English <-> 简体中文: the whole wizard is drawn again in it, and it is remembered."""
        problem = self.app.switch_language(other_language())
        if problem:
            self.notify(problem, title=_("Language not changed"), severity="warning")
            return
        await self.recompose()
        self.on_mount()
        choices = self.query_one("#choices", OptionList)
        choices.highlighted = choices.get_option_index("language")
        choices.focus()


def other_language() -> str:
    """The language the l key switches to."""
    return next(lang for lang in LANGUAGES if lang != current_language())


def language_line() -> str:
    """The language now and the other one, each named in its own script."""
    return _("l  Language: {language} (switch to {other})").format(
        language=LANGUAGES[current_language()], other=LANGUAGES[other_language()]
    )


def _run_line(run: RunLine) -> str:
    """Name, state and progress in columns; a Chinese state word takes two cells a character."""
    return f"{run.name:<32} {set_cell_size(state_name(run.state), 10)} {run.detail}"


def _detail(run: RunStatus) -> str:
    if run.max_steps:
        text = _("step {step}/{max_steps}").format(step=run.step, max_steps=run.max_steps)
    else:
        text = _("step {step}").format(step=run.step)
    if run.loss is None:
        return text
    return _("{progress}, loss {loss:.3f}").format(progress=text, loss=run.loss)
