"""Welcome: start a plan, continue the draft, open a plan file, or re-attach to a live run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from engine.plan import Plan
from tui.screens.file_picker import PLAN_SUFFIXES, FilePicker
from tui.worker_errors import ForwardsWorkerErrors

if TYPE_CHECKING:
    from engine.runs import RunStatus
    from tui.app import StillroomApp

INTRO = (
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
        Binding("n", "new_plan", "New plan"),
        Binding("c", "continue_draft", "Continue"),
        Binding("o", "open_plan", "Open plan"),
        Binding("a", "attach", "Re-attach"),
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
            yield Static(INTRO, id="intro")
            yield Static("", id="live")
            yield OptionList(id="choices")
            yield Static("Recent runs", classes="section")
            yield Static("Reading the runs folder…", id="runs")
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
        options = [Option("n  New plan, from the reference notebook's defaults", id="new")]
        if app.has_draft:
            options.insert(
                0,
                Option(f"c  Continue {app.plan_path} (at the {app.step} step)", id="continue"),
            )
        options.append(Option("o  Open a plan file…", id="open"))
        if self.live_run:
            options.insert(
                0, Option(f"a  Re-attach to {self.live_run}, still training", id="attach")
            )
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
            runs.update(f"No runs yet in {self.app.runs_dir}/.")
        else:
            runs.update("\n".join(f"{r.name:<32} {r.state:<10} {r.detail}" for r in message.runs))
        self.live_run = message.live
        if message.live:
            live = self.query_one("#live", Static)
            live.update(f"{message.live} is still training. Press a to follow it live.")
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
        self.app.start_plan(Plan())
        self.notify(f"New plan; it is saved to {self.app.plan_path} as you go.")

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
            self.notify(error, title="Cannot open that plan", severity="error")
        else:
            self.notify(
                f"Editing {path} in place: every change is saved there. "
                f"Next time: stillroom --plan {path}"
            )

    def action_attach(self) -> None:
        """Follow the live run on the Train step, inside the app."""
        if not self.live_run:
            self.notify("No run is training now.")
            return
        self.app.attach_run(Path(self.app.runs_dir) / self.live_run)


def _detail(run: RunStatus) -> str:
    text = f"step {run.step}/{run.max_steps}" if run.max_steps else f"step {run.step}"
    return f"{text}, loss {run.loss:.3f}" if run.loss is not None else text
