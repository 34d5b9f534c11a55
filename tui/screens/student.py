"""Student: the model, LoRA and training knobs, and a memory-fit gauge that follows them.

Every change re-estimates peak GPU memory in a worker (a hub id in the
built-in table is instant; a local folder reads its config.json, which
imports transformers) and the gauge shows the verdict against the detected
GPU, or against a card size the user picks when planning on another machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Label, Select, Static
from textual.worker import get_current_worker

from engine.errors import UserError
from engine.plan import Plan
from engine.train.presets import PRESETS, Preset, get_preset, preset_for
from tui.screens.base import StepScreen
from tui.widgets.fit_gauge import FitGauge
from tui.widgets.knob import BOOLEAN, Knob

if TYPE_CHECKING:
    from engine.train.memory import Estimate, TokenProfile

DETECTED = 0.0
# What the user can compare against when not on the training box (MiB as NVML reports).
CARDS = [("15 GB (T4)", 15360.0), ("24 GB (L4, 4090)", 24564.0), ("40 GB (A100)", 40960.0),
         ("80 GB (A100, H100)", 81559.0)]  # fmt: skip
# Each optimizer's help line: what its states cost.
OPTIMIZERS = {
    "adamw_8bit": "8-bit states save memory (GPU)",
    "paged_adamw_8bit": "8-bit states, paged out at peaks",
    "adamw_torch": "32-bit states: more memory; CPU ok",
    "adamw_torch_fused": "32-bit states, one fused kernel (GPU)",
    "sgd": "no states: least memory, slower",
}
PRESET_HELP = "sets precision, batch shape, length"


class StudentScreen(StepScreen):
    """Model, presets, knobs with one-line explanations, and the fit gauge."""

    STEP = "student"
    BINDINGS = [Binding("ctrl+y", "apply_fix", "Apply fix", priority=True)]

    class Estimated(Message):
        """A memory estimate (or why there is none) for the plan the user has now."""

        def __init__(self, estimate: Estimate | None, error: str = "") -> None:
            super().__init__()
            self.estimate = estimate
            self.error = error

    class ModelChecked(Message):
        """Where the student model loads from (``detail``), or what is wrong (``error``)."""

        def __init__(self, model: str, detail: str, error: str) -> None:
            super().__init__()
            self.model = model
            self.detail = detail
            self.error = error

    class GpuFound(Message):
        """The GPU probe finished: total MiB and name, or ``None``."""

        def __init__(self, gpu: tuple[float, str] | None) -> None:
            super().__init__()
            self.gpu = gpu

    def __init__(self) -> None:
        super().__init__()
        self.card_mb = DETECTED
        # (model, error) of the last finished model check; error "" when it loads.
        self.model_check: tuple[str, str] | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Label("Compare with")
            yield Select([("this machine's GPU", DETECTED), *CARDS], value=DETECTED,
                         allow_blank=False, compact=True, id="card")  # fmt: skip
            yield Static("", id="card-help", classes="help")
        with Horizontal(classes="row"):
            yield Label("Preset")
            yield Select([(p.title, p.name) for p in PRESETS], prompt="pick a preset…",
                         compact=True, id="preset")  # fmt: skip
            yield Static(PRESET_HELP, id="preset-help", classes="help")
        yield FitGauge(id="gauge")
        checkpointing = Static("", id="checkpointing", classes="help")
        checkpointing.display = False  # until an estimate against a card says how
        yield checkpointing
        forgetting = Static("", id="forgetting", classes="help")
        forgetting.display = False  # until the plan is in the range measured to forget
        yield forgetting
        yield Knob("student.model", "Student model", "hub id or local folder")
        yield Knob("student.max_seq_length", "Max length", "tokens per row; longer rows are cut")
        yield Knob(
            "student.load_in_4bit", "4-bit", "QLoRA: a quarter of the memory", choices=BOOLEAN
        )
        yield Knob("lora.r", "LoRA rank", "8-64: higher learns more, uses more")
        yield Knob("lora.alpha", "LoRA alpha", "update scale; usually equal to rank")
        yield Knob("lora.dropout", "LoRA dropout", "0 is fastest; 0.05 for tiny data")
        yield Knob("training.batch_size", "Batch size", "rows per micro-batch: memory grows")
        yield Knob("training.grad_accum", "Grad accum", "micro-batches per optimiser step")
        yield Knob("training.max_steps", "Max steps", "optimiser steps; 60 is a quick run")
        yield Knob("training.learning_rate", "Learning rate", "2e-4 suits LoRA")
        yield Knob(
            "training.optimizer",
            "Optimizer",
            "",
            choices=[(name, name) for name in OPTIMIZERS],
        )

    def show_plan(self) -> None:
        super().show_plan()
        self._show_preset()
        self._show_optimizer_help()
        self._show_forgetting()

    def _show_preset(self) -> None:
        """The preset the plan's settings match, so coming back shows what was picked."""
        preset = matching_preset(self.app.plan)
        select = self.query_one("#preset", Select)
        with self.prevent(Select.Changed):
            if preset is None:
                select.clear()
            else:
                select.value = preset.name
        self.query_one("#preset-help", Static).update(PRESET_HELP)

    def _show_forgetting(self) -> None:
        """A warning while the plan is in the range that forgets on the Data step's rows."""
        from engine.replay import forgetting_risk

        warning = forgetting_risk(self.app.plan, self.app.data_rows)
        line = self.query_one("#forgetting", Static)
        line.update(f"⚠ {warning}" if warning else "")
        line.display = bool(warning)

    def _show_optimizer_help(self) -> None:
        optimizer = self.app.plan.training.optimizer
        knob = self.query_one("#knob-training-optimizer", Knob)
        knob.explain(help=OPTIMIZERS.get(optimizer, ""))

    def on_mount(self) -> None:
        if self.app.gpu_probed:
            self._show_cards()
        else:
            self._probe_gpu()
        self._check_model(self.app.plan.student.model)

    def on_screen_resume(self) -> None:
        # StepScreen.on_screen_resume has shown the plan; the data step may have changed it.
        if self.app.gpu_probed:
            self._estimate_now()
        self._check_model(self.app.plan.student.model)

    @work(thread=True, exclusive=True, group="model")
    def _check_model(self, model: str) -> None:
        from engine.hub import locate_model

        try:
            message = self.ModelChecked(model, locate_model(model, ask_hub=False).detail, "")
        except UserError as error:
            message = self.ModelChecked(model, "", f"{error.message} {error.hint}".strip())
        if not get_current_worker().is_cancelled:
            self.post_message(message)

    @on(ModelChecked)
    def _model_checked(self, message: ModelChecked) -> None:
        if message.model != self.app.plan.student.model:
            return  # an older check: the user has typed on since
        self.model_check = (message.model, message.error)
        knob = self.query_one("#knob-student-model", Knob)
        knob.explain(message.error or None, help=f"✓ {message.detail}" if message.detail else None)

    @work(thread=True, exit_on_error=False, exclusive=True, group="gpu")
    def _probe_gpu(self) -> None:
        self.post_message(self.GpuFound(self.app.gpu_probe()))

    @on(GpuFound)
    def _gpu_found(self, message: GpuFound) -> None:
        self.app.gpu, self.app.gpu_probed = message.gpu, True
        self._show_cards()

    def _show_cards(self) -> None:
        self._show_card_help()
        self._estimate_now()

    def _show_card_help(self) -> None:
        gpu = self.app.gpu
        here = f"here: {gpu[1]}, {gpu[0] / 1024:.0f} GB" if gpu else "here: no GPU"
        preset = preset_for(self._card_total())
        self.query_one("#card-help", Static).update(f"{here}; preset {preset.name} suits it")

    def _card_total(self) -> float | None:
        if self.card_mb != DETECTED:
            return self.card_mb
        return self.app.gpu[0] if self.app.gpu else None

    def _card_name(self) -> str:
        if self.card_mb != DETECTED:
            return next(label for label, mb in CARDS if mb == self.card_mb)
        return self.app.gpu[1] if self.app.gpu else "no GPU"

    @on(Select.Changed, "#card")
    def _card_picked(self, event: Select.Changed) -> None:
        event.stop()
        self.card_mb = float(event.value)  # type: ignore[arg-type]
        self._show_card_help()
        self._estimate_now()

    @on(Select.Changed, "#preset")
    def _preset_picked(self, event: Select.Changed) -> None:
        event.stop()
        if event.value is Select.BLANK:
            return
        preset = get_preset(str(event.value))
        self.app.set_plan(preset.apply(self.app.plan))
        self.show_plan()
        self.query_one("#preset-help", Static).update(preset.why)  # once, when picked
        self._estimate_now()

    def plan_changed(self, key: str) -> None:
        self._show_preset()
        self._show_optimizer_help()
        self._show_forgetting()
        self._estimate_now()
        if key == "student.model":
            self._check_model(self.app.plan.student.model)

    def _estimate_now(self) -> None:
        self._estimate(self.app.plan, self._card_total(), self.app.token_profile)

    @work(thread=True, exit_on_error=False, exclusive=True, group="fit")
    def _estimate(self, plan: Plan, card_mb: float | None, profile: TokenProfile | None) -> None:
        from engine.train.memory import estimate

        try:
            result = estimate(plan, gpu_total_mb=card_mb, rows_tokens=profile)
        except UserError as error:
            message = self.Estimated(None, f"Cannot estimate: {error} {error.hint}".strip())
        else:
            message = self.Estimated(result)
        if not get_current_worker().is_cancelled:
            self.post_message(message)

    @on(Estimated)
    def _estimated(self, message: Estimated) -> None:
        self.query_one(FitGauge).show(message.estimate, self._card_name(), message.error)
        self._show_checkpointing(message.estimate)
        self.refresh_bindings()

    def _show_checkpointing(self, estimate: Estimate | None) -> None:
        """How the run will checkpoint on the card compared with, and why (none without one)."""
        line = self.query_one("#checkpointing", Static)
        reason = estimate.checkpointing_reason if estimate and estimate.available_mb else ""
        line.update(reason[:1].upper() + reason[1:])
        line.display = bool(reason)

    @property
    def estimate(self) -> Estimate | None:
        return self.query_one(FitGauge).estimate

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "apply_fix":
            return bool(self.estimate and self.estimate.suggestions)
        return True

    def action_apply_fix(self) -> None:
        if self.estimate and self.estimate.suggestions:
            suggestion = self.estimate.suggestions[0]
            self.app.set_plan(suggestion.apply(self.app.plan))
            self.notify(f"Applied: {suggestion}.")
            self.show_plan()
            self._estimate_now()

    def problems(self) -> list[str]:
        problems = self._model_problems()
        estimate = self.estimate
        if estimate and estimate.verdict == "will_not_fit":
            fix = f" Press ctrl+y: {estimate.suggestions[0]}." if estimate.suggestions else ""
            problems.append(f"This plan will not fit the GPU ({estimate.summary()}).{fix}")
        return problems

    def _model_problems(self) -> list[str]:
        """A student model that cannot be loaded is caught here, not 50 s into training."""
        from engine.hub import locate_model, needs_network

        model = self.app.plan.student.model
        if self.model_check and self.model_check[0] == model:
            return [self.model_check[1]] if self.model_check[1] else []
        if needs_network(model):
            return [f"Still checking that the student model {model} can be fetched; "
                    "press ctrl+n again in a moment."]  # fmt: skip
        try:
            locate_model(model, ask_hub=False)
        except UserError as error:
            return [f"{error.message} {error.hint}".strip()]
        return []


def matching_preset(plan: Plan) -> Preset | None:
    """The preset whose every machine setting (what any preset sets, the student model aside)
    the plan has: its own value where it sets one, else the default."""
    default = Plan()
    keys = {(section, name) for p in PRESETS for section, values in p.overrides.items()
            for name in values} - {("student", "model")}  # fmt: skip
    for preset in PRESETS:
        wanted = preset.apply(default)
        if all(getattr(getattr(plan, section), name) == getattr(getattr(wanted, section), name)
               for section, name in keys):  # fmt: skip
            return preset
    return None
