"""StillroomApp: the wizard from teacher to student, one screen per step.

The app owns the draft plan. Every valid change is autosaved (atomically) to
the draft file together with the current step, so quitting and starting again
resumes where the user was. Steps live in modes, so a screen and its running
workers survive going back and forth. Nothing heavy is imported here: engine
calls that need torch, transformers or openai are imported inside workers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen
from textual.worker import Worker, WorkerState

from engine.chat_options import ChatOptions
from engine.errors import UserError
from engine.events import GpuSample
from engine.fileio import cannot_write
from engine.i18n import N_, _, use_language
from engine.plan import Plan, PlanError, load_plan, plan_from_dict
from engine.runs import PLAN_FILE
from engine.settings import remember, settings_path
from engine.train.memory import TokenProfile
from tui.draft import DEFAULT_PATH, read_draft, set_aside, write_draft
from tui.screens.chat import ChatScreen
from tui.screens.command import CommandScreen
from tui.screens.data import DataScreen
from tui.screens.student import StudentScreen
from tui.screens.teacher import TeacherScreen
from tui.screens.train import TrainScreen
from tui.screens.welcome import WelcomeScreen
from tui.steps import READY, neighbour, step_named

# The app's step keys; none of them acts while a dialog is open.
NAVIGATION = ("previous_step", "next_step", "show_command")
# How long a notice stays, by severity: long enough to read, short enough not to linger.
NOTICE_S = {"information": 4.0, "warning": 8.0, "error": 8.0}

GpuProbe = Callable[[], "tuple[float, str] | None"]
GpuSampler = Callable[[set[int]], "list[GpuSample] | None"]


def detect_gpu() -> tuple[float, str] | None:
    """The first GPU's total MiB and name, or ``None`` without one (NVML, no torch)."""
    from engine import gpu

    samples = gpu.sample()
    return (samples[0].mem_total_mb, samples[0].name) if samples else None


def sample_gpus(own_pids: set[int]) -> list[GpuSample] | None:
    """Every GPU's reading now (``own_pids`` marked), or ``None`` without an NVIDIA GPU."""
    from engine import gpu

    return gpu.sample(own_pids) if gpu.available()[0] else None


class StillroomApp(App[None]):
    """The guided wizard: Welcome, then Teacher, Data, Student, Train, Chat."""

    TITLE = "Stillroom"
    CSS_PATH = "styles/app.tcss"
    ENABLE_COMMAND_PALETTE = False
    MODES = {
        "welcome": WelcomeScreen,
        "teacher": TeacherScreen,
        "data": DataScreen,
        "student": StudentScreen,
        "train": TrainScreen,
        "chat": ChatScreen,
    }
    # priority: these work while an Input has focus; none collides with Input's own keys.
    BINDINGS = [
        Binding("ctrl+p", "previous_step", N_("Back"), priority=True),
        Binding("ctrl+n", "next_step", N_("Next"), priority=True),
        Binding("ctrl+g", "show_command", N_("As command"), priority=True),
        Binding("ctrl+q", "quit", N_("Quit"), priority=True),
    ]

    def __init__(
        self,
        plan_path: Path = DEFAULT_PATH,
        *,
        gpu_probe: GpuProbe = detect_gpu,
        gpu_sampler: GpuSampler = sample_gpus,
        runs_dir: str | None = None,
        chat_run: Path | None = None,
        chat_options: ChatOptions | None = None,
    ) -> None:
        super().__init__()
        self.plan_path = Path(plan_path)
        self.gpu_probe = gpu_probe
        self.gpu_sampler = gpu_sampler
        self.attach_request: Path | None = None
        self.gpu: tuple[float, str] | None = None
        self.gpu_probed = False
        self.token_profile: TokenProfile | None = None
        self.data_rows: int | None = None  # usable rows the Data step read (forgetting warning)
        self.draft_error: str | None = None
        # The user's plan file that did not load: moved aside (never overwritten) at the first save.
        self.keep_aside: Path | None = None
        self.save_problem: str | None = None
        # A new plan replaces the draft file at its first save; after that, and for a plan the
        # user opened, saving rewrites only the changed values (their comments stay).
        self.new_draft = False
        try:
            self.plan, saved_step = read_draft(self.plan_path)
        except PlanError as error:
            self.plan, saved_step = Plan(), None
            self.draft_error = _("{error}\n→ {hint}\nStarting from the defaults.").format(
                error=error, hint=error.hint
            )
            if self.plan_path.is_file():
                self.keep_aside = self.plan_path
                self.draft_error += _(
                    " Your file stays as it is until you change something; then it is renamed "
                    "to a dated backup next to it (the wizard says where), never overwritten."
                )
        self.has_draft = saved_step is not None
        self.step = saved_step if saved_step in READY else "teacher"
        self._runs_dir = runs_dir
        # `stillroom chat RUN`: the Chat step talks to this run, not the plan's newest.
        self.chat_run = chat_run
        self.chat_options = chat_options or ChatOptions()
        if chat_run is not None:
            self._open_on_chat(chat_run)

    def _open_on_chat(self, run_dir: Path) -> None:
        """Start on the Chat step; without a draft, the run's own plan is the draft to be."""
        if not self.has_draft and not self.draft_error:
            try:
                self.plan = load_plan(run_dir / PLAN_FILE)
            except PlanError:
                pass  # the run's plan is unreadable: chat needs only the run folder
        self.step = "chat"

    @property
    def runs_dir(self) -> str:
        return self._runs_dir or self.plan.output.runs_dir

    def on_mount(self) -> None:
        self.switch_mode(self.step if self.has_draft or self.chat_run else "welcome")
        if self.draft_error:
            self.notify(self.draft_error, title=_("Draft not loaded"), severity="error")

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """A notice that goes away on its own within a few seconds, whatever asked for more."""
        limit = NOTICE_S[severity]
        timeout = limit if timeout is None else min(timeout, limit)
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that raised (every worker has exit_on_error=False): say so; the step goes on."""
        error = event.worker.error
        if event.state != WorkerState.ERROR or error is None:
            return
        if isinstance(error, UserError):
            text = f"{error}\n→ {error.hint}" if error.hint else str(error)
        else:
            text = _(
                "{kind}: {error}\nThis step still works: change what you entered and try "
                "again. If it happens again, it is a bug worth reporting."
            ).format(kind=type(error).__name__, error=error)
        self.notify(text, title=_("That did not work"), severity="error", timeout=30)

    # The draft plan

    def value_of(self, key: str) -> Any:
        section, name = key.split(".")
        return getattr(getattr(self.plan, section), name)

    def change_key(self, key: str, value: Any) -> str | None:
        section, name = key.split(".")
        return self.change(section, **{name: value})

    def change(self, section: str, **values: Any) -> str | None:
        """Set keys of one section; ``None`` means "back to the default".

        Returns what is wrong (and the plan unchanged) or ``None`` once saved.
        """
        data = self.plan.to_dict()
        part = data.setdefault(section, {})
        for name, value in values.items():
            if value is None:
                part.pop(name, None)
            else:
                part[name] = value
        try:
            plan = plan_from_dict(data, _("the wizard"))
        except PlanError as error:
            return "; ".join(line.removeprefix(f"{section}.") for line in error.problems)
        self.set_plan(plan)
        return None

    def set_plan(self, plan: Plan) -> None:
        if plan != self.plan:
            self.plan = plan
            self.save()

    def save(self) -> None:
        """Autosave the draft; a folder that refuses the write is said once, and the app goes on."""
        try:
            if self.keep_aside is not None:
                backup = set_aside(self.keep_aside)
                self.keep_aside = None
                self.notify(
                    _(
                        "Your plan file {path} did not load, so it was kept as {backup}; "
                        "the wizard now saves to {path}."
                    ).format(path=self.plan_path, backup=backup),
                    title=_("Your plan is kept"),
                    severity="warning",
                    timeout=30,
                )
            write_draft(self.plan_path, self.plan, self.step, fresh=self.new_draft)
        except OSError as error:
            self._not_saved(error)
            return
        self.new_draft = False
        self.has_draft = True
        self.save_problem = None

    def _not_saved(self, error: OSError) -> None:
        problem = cannot_write(
            self.plan_path,
            error,
            _(
                "Changes live only in this session until it can save. Quit (ctrl+q) and start "
                "Stillroom in a folder you can write to, or name a draft there: "
                "stillroom --plan ~/stillroom-plan.toml"
            ),
        )
        if str(problem) != self.save_problem:  # not once per key press
            self.save_problem = str(problem)
            self.notify(
                f"{problem}\n→ {problem.hint}", title=_("Not saved"), severity="error", timeout=30
            )

    def arrived(self, step: str) -> None:
        """A step screen is showing: remember it in the draft."""
        if step != self.step:
            self.step = step
            self.save()

    def start_plan(self, plan: Plan, *, new: bool = False) -> None:
        """Replace the draft (``new``, or an opened plan) and begin at the first step."""
        self.plan, self.step = plan, "teacher"
        self.new_draft = new
        self.token_profile = None
        self.data_rows = None
        self.save()
        self.switch_mode("teacher")

    def open_plan(self, path: str) -> str | None:
        """Make a plan file the draft, edited in place; returns what is wrong instead."""
        file = Path(path.strip()).expanduser()
        if not path.strip() or file.is_dir():
            return _("{path} is not a plan file: pick a .toml file.").format(
                path=path.strip() or _("No file")
            )
        try:
            plan = load_plan(file)
        except PlanError as error:
            return str(error)
        self.plan_path = file
        self.start_plan(plan)
        return None

    def attach_run(self, run_dir: Path) -> None:
        """Open the Train step following ``run_dir`` (a run still training)."""
        self.attach_request = run_dir
        if isinstance(self.screen, TrainScreen):
            self.screen.take_attach_request()
        else:
            self.switch_mode("train")

    def switch_language(self, lang: str) -> str | None:
        """Speak ``lang`` from now on and next time: every other step screen is built again in
        it when next shown (the draft plan lives here, so nothing of it is lost; a run being
        followed is found again). Returns why not, while a generation would lose its screen."""
        if any(w.group == "generate" and w.state == WorkerState.RUNNING for w in self.workers):
            return _(
                "The Teacher step is generating: pause it (ctrl+s) or let it finish, "
                "then switch the language."
            )
        use_language(lang)
        if not remember("lang", lang):
            self.notify(
                _("The language could not be saved in {path}; it applies to this session.").format(
                    path=settings_path()
                ),
                severity="warning",
            )
        for mode, screen in self.MODES.items():
            if mode != self.current_mode:
                self.remove_mode(mode)
                self.add_mode(mode, screen)
        return None

    def take_attach_request(self) -> Path | None:
        request, self.attach_request = self.attach_request, None
        return request

    # Navigation

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in NAVIGATION and isinstance(self.screen, ModalScreen):
            return False  # a dialog on top: finish or close it first
        if action == "previous_step":
            return self.current_mode != "welcome"
        if action == "next_step":
            return self.current_mode == "welcome" or neighbour(self.current_mode, 1) is not None
        return True

    def action_next_step(self) -> None:
        current = self.current_mode
        if current == "welcome":
            self.switch_mode(self.step)
            return
        problems = self.screen.problems() if hasattr(self.screen, "problems") else []
        if problems:
            self.notify("\n".join(problems), title=_("Before the next step"), severity="error")
            return
        following = neighbour(current, 1)
        if following is None:
            return
        if following.later:
            self.push_screen(CommandScreen(following.name, note=following.later))
        else:
            self.switch_mode(following.name)

    def action_previous_step(self) -> None:
        previous = neighbour(self.current_mode, -1)
        self.switch_mode(previous.name if previous else "welcome")

    def action_show_command(self) -> None:
        step = self.current_mode if self.current_mode in READY else self.step
        note = _("The {step} step, headless:").format(step=_(step_named(step).title))
        self.push_screen(CommandScreen(step, note=note))


THEMES = {"dark": "textual-dark", "light": "textual-light"}


def run_wizard(
    plan_path: str | None,
    theme: str = "dark",
    *,
    chat_run: Path | None = None,
    chat_options: ChatOptions | None = None,
) -> int:
    """``stillroom`` with no subcommand: the wizard on the draft plan (or ``stillroom chat
    RUN``: the wizard open on the Chat step, talking to ``chat_run``)."""
    path = Path(plan_path) if plan_path else DEFAULT_PATH
    app = StillroomApp(path, chat_run=chat_run, chat_options=chat_options)
    app.theme = THEMES[theme]
    app.run()
    return 0
