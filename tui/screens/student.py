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
from engine.i18n import N_, _
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
    "adamw_8bit": N_("8-bit states save memory (GPU)"),
    "paged_adamw_8bit": N_("8-bit states, paged out at peaks"),
    "adamw_torch": N_("32-bit states: more memory; CPU ok"),
    "adamw_torch_fused": N_("32-bit states, one fused kernel (GPU)"),
    "sgd": N_("no states: least memory, slower"),
}
PRESET_HELP = N_("sets precision, batch shape, length")
# Where a hub id is downloaded from (student.source); provider names stay as they are.
SOURCES = [("Hugging Face", "huggingface"), ("ModelScope", "modelscope")]


class StudentScreen(StepScreen):
    """Model, presets, knobs with one-line explanations, and the fit gauge."""

    STEP = "student"
    BINDINGS = [Binding("ctrl+y", "apply_fix", N_("Apply fix"), priority=True)]

    class Estimated(Message):
        """A memory estimate (or why there is none) for the plan the user has now."""

        def __init__(self, estimate: Estimate | None, error: str = "", gpus: int = 1) -> None:
            super().__init__()
            self.estimate = estimate
            self.error = error
            self.gpus = gpus  # the ranks sharing each step: the estimate is one rank's card

    class ModelChecked(Message):
        """Where the student model loads from (``detail``), or what is wrong (``error``)."""

        def __init__(self, model: str, source: str, detail: str, error: str) -> None:
            super().__init__()
            self.model = model
            self.source = source
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
        # (model, source, error) of the last finished model check; error "" when it loads.
        self.model_check: tuple[str, str, str] | None = None

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="row"):
            yield Label(_("Compare with"))
            yield Select([(_("this machine's GPU"), DETECTED), *CARDS], value=DETECTED,
                         allow_blank=False, compact=True, id="card")  # fmt: skip
            yield Static("", id="card-help", classes="help")
        with Horizontal(classes="row"):
            yield Label(_("Preset"))
            yield Select([(_(p.title), p.name) for p in PRESETS], prompt=_("pick a preset…"),
                         compact=True, id="preset")  # fmt: skip
            yield Static(_(PRESET_HELP), id="preset-help", classes="help")
        yield FitGauge(id="gauge")
        checkpointing = Static("", id="checkpointing", classes="help")
        checkpointing.display = False  # until an estimate against a card says how
        yield checkpointing
        forgetting = Static("", id="forgetting", classes="help")
        forgetting.display = False  # until the plan is in the range measured to forget
        yield forgetting
        yield Knob("student.model", _("Student model"), _("hub id or local folder"))
        yield Knob(
            "student.source",
            _("Model hub"),
            _("where a hub id is downloaded from"),
            choices=SOURCES,
        )
        yield Knob(
            "student.max_seq_length", _("Max length"), _("tokens per row; longer rows are cut")
        )
        yield Knob(
            "student.load_in_4bit",
            _("4-bit"),
            _("QLoRA: a quarter of the memory"),
            choices=[(_(word), value) for word, value in BOOLEAN],
        )
        yield Knob("lora.r", _("LoRA rank"), _("8-64: higher learns more, uses more"))
        yield Knob("lora.alpha", _("LoRA alpha"), _("update scale; usually equal to rank"))
        yield Knob("lora.dropout", _("LoRA dropout"), _("0 is fastest; 0.05 for tiny data"))
        yield Knob("training.batch_size", _("Batch size"), _("rows per micro-batch: memory grows"))
        yield Knob("training.grad_accum", _("Grad accum"), _("micro-batches per optimiser step"))
        yield Knob("training.max_steps", _("Max steps"), _("optimiser steps; 60 is a quick run"))
        yield Knob("training.learning_rate", _("Learning rate"), _("2e-4 suits LoRA"))
        yield Knob(
            "training.optimizer",
            _("Optimizer"),
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
        self.query_one("#preset-help", Static).update(_(PRESET_HELP))

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
        knob.explain(help=_(OPTIMIZERS[optimizer]) if optimizer in OPTIMIZERS else "")

    def on_mount(self) -> None:
        if self.app.gpu_probed:
            self._show_cards()
        else:
            self._probe_gpu()
        self._check_model(self.app.plan.student.model, self.app.plan.student.source)

    def on_screen_resume(self) -> None:
        # StepScreen.on_screen_resume has shown the plan; the data step may have changed it.
        if self.app.gpu_probed:
            self._estimate_now()
        self._check_model(self.app.plan.student.model, self.app.plan.student.source)

    @work(thread=True, exclusive=True, group="model")
    def _check_model(self, model: str, source: str) -> None:
        from engine.hub import locate_model

        try:
            found = locate_model(model, ask_hub=False, source=source)  # type: ignore[arg-type]
            message = self.ModelChecked(model, source, found.detail, "")
        except UserError as error:
            text = f"{error.message} {error.hint}".strip()
            message = self.ModelChecked(model, source, "", text)
        if not get_current_worker().is_cancelled:
            self.post_message(message)

    @on(ModelChecked)
    def _model_checked(self, message: ModelChecked) -> None:
        student = self.app.plan.student
        if (message.model, message.source) != (student.model, student.source):
            return  # an older check: the user has typed on since
        self.model_check = (message.model, message.source, message.error)
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
        if gpu:
            here = _("here: {gpu}, {gb} GB").format(gpu=gpu[1], gb=f"{gpu[0] / 1024:.0f}")
        else:
            here = _("here: no GPU")
        preset = preset_for(self._card_total())
        self.query_one("#card-help", Static).update(
            _("{here}; preset {preset} suits it").format(here=here, preset=preset.name)
        )

    def _card_total(self) -> float | None:
        if self.card_mb != DETECTED:
            return self.card_mb
        return self.app.gpu[0] if self.app.gpu else None

    def _card_name(self) -> str:
        if self.card_mb != DETECTED:
            return next(label for label, mb in CARDS if mb == self.card_mb)
        return self.app.gpu[1] if self.app.gpu else _("no GPU")

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
        self.query_one("#preset-help", Static).update(_(preset.why))  # once, when picked
        self._estimate_now()

    def plan_changed(self, key: str) -> None:
        self._show_preset()
        self._show_optimizer_help()
        self._show_forgetting()
        self._estimate_now()
        if key in ("student.model", "student.source"):
            self._check_model(self.app.plan.student.model, self.app.plan.student.source)

    def _estimate_now(self) -> None:
        here = self.card_mb == DETECTED
        self._estimate(self.app.plan, self._card_total(), self.app.token_profile, here)

    @work(thread=True, exit_on_error=False, exclusive=True, group="fit")
    def _estimate(
        self, plan: Plan, card_mb: float | None, profile: TokenProfile | None, here: bool
    ) -> None:
        """One rank's peak on one card: with several GPUs each holds the model and its share
        of a step's samples. ``auto`` counts this machine's cards only when compared with it."""
        from engine.train.distributed import planned_processes
        from engine.train.memory import estimate

        try:
            counted = here and plan.training.gpus == "auto"
            gpus = planned_processes(plan.training.gpus, self._cards_here() if counted else 0)
            result = estimate(plan, gpu_total_mb=card_mb, rows_tokens=profile, processes=gpus)
        except UserError as error:
            text = _("Cannot estimate: {error} {hint}").format(error=error, hint=error.hint or "")
            message = self.Estimated(None, text.strip())
        else:
            message = self.Estimated(result, gpus=gpus)
        if not get_current_worker().is_cancelled:
            self.post_message(message)

    def _cards_here(self) -> int:
        """The GPUs this machine shows (the app's sampler: NVML, no torch)."""
        return len(self.app.gpu_sampler(set()) or [])

    @on(Estimated)
    def _estimated(self, message: Estimated) -> None:
        gauge = self.query_one(FitGauge)
        gauge.show(message.estimate, self._card_name(), message.error, gpus=message.gpus)
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
            self.notify(_("Applied: {fix}.").format(fix=suggestion))
            self.show_plan()
            self._estimate_now()

    def problems(self) -> list[str]:
        problems = self._model_problems()
        estimate = self.estimate
        if estimate and estimate.verdict == "will_not_fit":
            problem = _("This plan will not fit the GPU ({summary}).").format(
                summary=estimate.summary()
            )
            if estimate.suggestions:
                fix = _("Press ctrl+y: {fix}.").format(fix=estimate.suggestions[0])
                problem = f"{problem} {fix}"
            problems.append(problem)
        return problems

    def _model_problems(self) -> list[str]:
        """A student model that cannot be loaded is caught here, not 50 s into training."""
        from engine.hub import locate_model, needs_network

        model, source = self.app.plan.student.model, self.app.plan.student.source
        if self.model_check and self.model_check[:2] == (model, source):
            return [self.model_check[2]] if self.model_check[2] else []
        if needs_network(model, source):
            return [_("Still checking that the student model {model} can be fetched; "
                      "press ctrl+n again in a moment.").format(model=model)]  # fmt: skip
        try:
            locate_model(model, ask_hub=False, source=source)
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
