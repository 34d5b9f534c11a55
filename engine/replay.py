"""Replay: the base model's own answers to general prompts, mixed into the training rows.

An adapter trained on a few dozen rows at a high rate pulls every answer toward
them: SmolLM2 that learned eight invented facts also moved Paris to
Saint-Germain. Rows the base model wrote itself cost it nothing to fit as they
are, so mixed in they pull the adapter back toward what the base already said.
The prompts are the control set's replay half (:data:`engine.retention.REPLAY_HALF`,
never the half retention scores) or the plan's ``dataset.replay_prompts`` file;
the answers are greedy and cached per base model beside retention's, so only the
first run on a base model pays for them.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable
from typing import Any

from engine import events as ev
from engine.data.types import Conversation
from engine.i18n import _, ngettext
from engine.plan import Plan
from engine.retention import (
    REPLAY_HALF,
    BaseAnswers,
    ControlPrompt,
    base_answers,
    read_control_file,
)

BUDGET = 128  # tokens per base answer; an answer cut at the budget is not replayed


def replay_count(train_rows: int, fraction: float) -> int:
    """Replay rows that make ``fraction`` of the rows trained on, beside ``train_rows`` of the
    user's (at least one while replay is on and there is data)."""
    if fraction <= 0 or train_rows <= 0:
        return 0
    return max(1, round(train_rows * fraction / (1 - fraction)))


def replay_rows(plan: Plan, train_rows: int) -> tuple[int, int]:
    """``(rows, asked)``: the replay rows added beside ``train_rows``, capped at the plan's
    ``dataset.replay_max_rows``, and what ``dataset.replay_fraction`` alone asks for. Rows cycle
    through the prompts, so past the cap they would only repeat the same answers."""
    asked = replay_count(train_rows, plan.dataset.replay_fraction)
    return min(asked, plan.dataset.replay_max_rows), asked


def replay_prompts(plan: Plan) -> tuple[ControlPrompt, ...]:
    """The plan's replay prompt file, else the built-in control set's replay half."""
    source = plan.dataset.replay_prompts
    return read_control_file(source) if source else REPLAY_HALF


def replay_conversations(
    plan: Plan, train_rows: int, first_row: int, emit: Callable[[ev.Event], None]
) -> list[Conversation]:
    """``replay_rows`` conversations of a prompt and the base model's answer; numbered from
    ``first_row`` after the source's rows. The prompts are drawn in a seeded order, no more of
    them than there are rows (so the base model answers only those), and cycled through."""
    wanted, asked = replay_rows(plan, train_rows)
    if not wanted:
        return []
    if wanted < asked:
        emit(
            ev.Log(
                line=_(
                    "replay capped at {rows} rows (dataset.replay_fraction = {fraction} of "
                    "{train} rows would be {asked}); dataset.replay_max_rows sets the cap"
                ).format(
                    rows=wanted,
                    fraction=f"{plan.dataset.replay_fraction:g}",
                    train=f"{train_rows:,}",
                    asked=f"{asked:,}",
                )
            )
        )
    prompts = replay_prompts(plan)
    order = list(range(len(prompts)))
    random.Random(plan.training.seed).shuffle(order)
    prompts = tuple(prompts[i] for i in order[:wanted])
    started = time.monotonic()
    answered = _answer(plan, prompts, emit)
    pairs = [
        (control.prompt, answer.strip())
        for control, answer in zip(prompts, answered.answers, strict=True)
        if answer.strip()
    ]
    if not pairs:
        emit(
            ev.Warning(
                message=_(
                    "no replay rows: the base model answered none of the {count} replay prompts "
                    "within {budget} tokens"
                ).format(count=len(prompts), budget=BUDGET),
                hint=_(
                    "Training goes on without replay; dataset.replay_prompts can name shorter "
                    "prompts, and dataset.replay_fraction = 0 turns replay off."
                ),
            )
        )
        return []
    chosen = [pairs[i % len(pairs)] for i in range(wanted)]
    line = (
        ngettext(
            "+ {rows} replay row written by the base model ({prompts} prompts, read from the "
            "cache); dataset.replay_fraction = {fraction}",
            "+ {rows} replay rows written by the base model ({prompts} prompts, read from the "
            "cache); dataset.replay_fraction = {fraction}",
            wanted,
        )
        if answered.cached
        else ngettext(
            "+ {rows} replay row written by the base model ({prompts} prompts, answered in "
            "{seconds} s); dataset.replay_fraction = {fraction}",
            "+ {rows} replay rows written by the base model ({prompts} prompts, answered in "
            "{seconds} s); dataset.replay_fraction = {fraction}",
            wanted,
        )
    )
    seconds = f"{time.monotonic() - started:.0f}"
    fraction = f"{plan.dataset.replay_fraction:g}"
    emit(
        ev.Log(
            line=line.format(rows=wanted, prompts=len(pairs), seconds=seconds, fraction=fraction)
        )
    )
    return [
        Conversation(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
            first_row + i,
        )
        for i, (prompt, answer) in enumerate(chosen)
    ]


def _answer(
    plan: Plan, prompts: tuple[ControlPrompt, ...], emit: Callable[[ev.Event], None]
) -> BaseAnswers:
    """The base model's answers ("" where one ran into the budget), from the cache, or
    generated once by a model loaded only then and let go before training loads its own."""
    from engine.train.backend_choice import choose_backend

    def generate(missing: tuple[ControlPrompt, ...]) -> list[str]:
        from engine.chat import load_model

        emit(
            ev.Log(
                line=_(
                    "replay: the base model answers {count} general prompts (once per base "
                    "model; later runs read them from the cache)"
                ).format(count=len(missing))
            )
        )
        student = load_model(plan)
        asked = [[{"role": "user", "content": control.prompt}] for control in missing]
        answers = student.answer_all(asked, max_new_tokens=BUDGET)
        _release(student)
        return [answer.text if answer.ended_cleanly else "" for answer in answers]

    backend = choose_backend(plan)[0]
    return base_answers(plan, backend, prompts, BUDGET, generate)


def _release(student: Any) -> None:
    """Give the generation model's memory back before the training model loads."""
    del student.model
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# Measured on SmolLM2-135M-Instruct learning 8 invented facts x 8 copies (docs/gpu.md,
# "Forgetting"): with replay 0.2 these recalled 7-8 of 8 and kept 35-37 of the 49 control
# answers that count (0.71-0.76); 18 steps at 2e-3, rank 16, no replay kept 24-26
# (0.49-0.53). A lower rate, rank 2, 2 epochs, attention only or replay 0.5 kept at most 40
# (0.82), and all but replay 0.5 recalled nothing: no setting tried both learned the facts and
# kept 0.9. A KL term toward the base (on the prompts, or on replay rows instead of their
# answers), replay prompts nearest the user's questions, or a scaled-down adapter kept no more
# at the same recall; a student trained on the base's own answers alone kept 41-43 (0.84-0.88).
SMALL_DATA_SETTINGS: dict[str, dict[str, float]] = {
    "training": {"epochs": 3, "learning_rate": 1e-3},
    "lora": {"r": 4, "alpha": 4},
}
SMALL_DATA_ROWS = 2000  # below this many rows, passes over the data pile up within a short run
FORGETS_EPOCHS = 3.0  # more passes than this over small data, a rate above FORGETS_RATE, a
FORGETS_RATE = 1e-3  # rank above FORGETS_RANK or no replay, and the student forgot more
FORGETS_RANK = 4


def passes(plan: Plan, rows: int) -> float:
    """How many times the plan's run goes over ``rows`` training rows."""
    t = plan.training
    if t.epochs is not None:
        return t.epochs
    return (t.max_steps or 0) * t.batch_size * t.grad_accum / max(rows, 1)


def forgetting_risk(plan: Plan, rows: int | None) -> str | None:
    """A warning, with the settings measured to forget least while still learning, when the
    plan is in the range that forgot more on small data; None where it is not (or the row count
    is unknown)."""
    if not rows or rows >= SMALL_DATA_ROWS:
        return None
    t, replay = plan.training, plan.dataset.replay_fraction
    times = passes(plan, rows)
    rank = plan.lora.r
    if times <= FORGETS_EPOCHS and t.learning_rate <= FORGETS_RATE and rank <= FORGETS_RANK:
        if replay > 0:
            return None
    training, lora = SMALL_DATA_SETTINGS["training"], SMALL_DATA_SETTINGS["lora"]
    sentence = (
        _(
            "This plan goes over {rows} rows {times} times at learning rate {rate}: on small "
            "data that makes the student forget what the base model knew."
        )
        if replay
        else _(
            "This plan goes over {rows} rows {times} times at learning rate {rate} without "
            "replay: on small data that makes the student forget what the base model knew."
        )
    )
    advice = _(
        "Measured to forget least while still learning: training.epochs = {epochs}, "
        "training.learning_rate = "
        "{suggested}, lora.r = {rank}, lora.alpha = {alpha}, dataset.replay_fraction = {replay}."
    )
    return (
        sentence.format(rows=f"{rows:,}", times=f"{times:.1f}", rate=f"{t.learning_rate:g}")
        + " "
        + advice.format(
            epochs=f"{training['epochs']:g}",
            suggested=f"{training['learning_rate']:g}",
            rank=f"{lora['r']:g}",
            alpha=f"{lora['alpha']:g}",
            replay=f"{Plan().dataset.replay_fraction:g}",
        )
    )
