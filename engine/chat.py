"""Talk to a trained student: load it once, stream answers, compare with base and teacher.

One :class:`Student` holds the base model with the run's LoRA adapter; the base
model's answer comes from the same weights with the adapter switched off, so a
comparison never needs a second copy in memory. On CUDA with Unsloth installed
it loads through Unsloth's inference mode, elsewhere through PEFT. Answers stream
from a generation thread; the final :class:`Answer` says whether the student
stopped at its end-of-turn token or was cut by the token budget. Many prompts at once
(eval, retention, replay) go through :meth:`Student.answer_all`, in batches.

The module imports nothing heavy itself, so a CLI or a TUI worker can import it;
torch and transformers arrive with :func:`load_student` (run it in a child process
from the TUI).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.chat_options import DEFAULT_MAX_NEW_TOKENS
from engine.data.types import Message
from engine.errors import UserError
from engine.i18n import _
from engine.plan import Plan, TeacherPlan
from engine.run_dir import RunDir
from engine.runs import find_run, newest_trained

# Conversations answered together by Student.answer_all: 32 retention prompts, 48 tokens at
# most, took SmolLM2-135M 16.6 s in batches against 66.4 s one at a time on a 2-core CPU, word
# for word the same answers; the 1.5B student's shape through Unsloth on an H200, 7.0 s against
# 48.7 s (bench/answer_batch_bench.py).
ANSWER_BATCH = 16
GREEDY = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}


@dataclass
class Answer:
    """One finished answer and how it ended."""

    text: str
    tokens: int
    cut: bool  # stopped by max_new_tokens before the end-of-turn token
    ended_cleanly: bool  # stopped at the end-of-turn token
    ttft_s: float | None = None  # time to first token
    tokens_per_s: float | None = None


@dataclass
class Generation:
    """Text pieces as they are generated; :attr:`answer` is set once the stream ends."""

    _pieces: Iterator[str]
    answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        return self._pieces


def resolve_run(ref: str | None, runs_dir: str | Path = "runs") -> Path:
    """A run by name or path (as ``stillroom attach`` finds it), or the newest with an adapter."""
    if ref:
        return find_run(ref, runs_dir)
    newest = newest_trained(runs_dir)
    if newest is not None:
        return newest
    raise UserError(
        _("no trained run in {runs_dir}/").format(runs_dir=runs_dir),
        hint=_("`stillroom runs` lists them."),
    )


class Student:
    """The run's student (base + adapter) and its tokenizer, ready to answer."""

    def __init__(self, model: Any, tokenizer: Any, plan: Plan, *, has_adapter: bool, backend: str):
        from engine.data.render import inspect_chat_template

        self.model = model
        self.tokenizer = tokenizer
        self.plan = plan
        self.has_adapter = has_adapter
        self.backend = backend
        self.end_of_turn_id = inspect_chat_template(tokenizer).end_of_turn_id
        self._lock = threading.Lock()  # one generation at a time: the adapter switch is global

    def render(self, messages: list[Message], system: str | None = None) -> str:
        """The prompt as the student saw its training data: its own chat template."""
        chat = [{"role": "system", "content": system}] if system else []
        chat += [{"role": m["role"], "content": m["content"]} for m in messages]
        return self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)

    def stream(
        self,
        messages: list[Message],
        *,
        system: str | None = None,
        base: bool = False,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    ) -> Generation:
        """Answer the last user turn of ``messages``, piece by piece.

        ``base`` answers with the adapter switched off; ``temperature`` 0 is greedy.
        """
        import torch

        ids = self.tokenizer(
            self.render(messages, system), return_tensors="pt", add_special_tokens=False
        )["input_ids"].to(self.model.device)
        streamer = _Streamer(self.tokenizer)
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": temperature, "top_p": top_p}
            if temperature > 0
            else GREEDY
        )
        failure: list[BaseException] = []

        def work() -> None:
            try:
                with self._generating(base):
                    self.model.generate(
                        input_ids=ids,
                        attention_mask=torch.ones_like(ids),
                        max_new_tokens=max_new_tokens,
                        streamer=streamer,
                        **self._ends(),
                        **sampling,
                    )
            except BaseException as error:  # noqa: BLE001 - re-raised in the reader
                failure.append(error)
                streamer.end()

        generation = Generation(iter(()))

        def pieces() -> Iterator[str]:
            started = time.monotonic()
            thread = threading.Thread(target=work, name="stillroom-generate", daemon=True)
            thread.start()
            yield from streamer.texts()
            thread.join()
            if failure:
                raise failure[0]
            generation.answer = streamer.answer(started, self.end_of_turn_id, max_new_tokens)

        generation._pieces = pieces()
        return generation

    def answer(self, messages: list[Message], **options: Any) -> Answer:
        """:meth:`stream`, consumed."""
        generation = self.stream(messages, **options)
        for _token in generation:
            pass
        assert generation.answer is not None
        return generation.answer

    def answer_all(
        self,
        conversations: Sequence[list[Message]],
        *,
        base: bool = False,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        progress: Callable[[int], None] = lambda done: None,
    ) -> list[Answer]:
        """Greedy answers to every conversation, :data:`ANSWER_BATCH` at a time (left-padded
        into one batch; half as many after a batch ran out of GPU memory, down to one): what
        eval, retention and replay ask; ``progress(answered)`` after each batch. No timings:
        a batch's tokens arrive together."""
        import torch

        answers: list[Answer] = []
        size = ANSWER_BATCH
        while len(answers) < len(conversations):
            batch = conversations[len(answers) : len(answers) + size]
            try:
                answers += self._answer_batch(batch, base, max_new_tokens)
            except torch.cuda.OutOfMemoryError:
                if len(batch) == 1:
                    raise
                size = (len(batch) + 1) // 2
                torch.cuda.empty_cache()
                continue
            progress(len(answers))
        return answers

    def _answer_batch(
        self, batch: Sequence[list[Message]], base: bool, max_new_tokens: int
    ) -> list[Answer]:
        import torch

        ends = self._ends()
        rows = [
            self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"]
            for messages in batch
        ]
        width = max(map(len, rows))
        ids = [[ends["pad_token_id"]] * (width - len(row)) + row for row in rows]
        mask = [[0] * (width - len(row)) + [1] * len(row) for row in rows]
        with self._generating(base):
            out = self.model.generate(
                input_ids=torch.tensor(ids, device=self.model.device),
                attention_mask=torch.tensor(mask, device=self.model.device),
                max_new_tokens=max_new_tokens,
                **ends,
                **GREEDY,
            )
        answers = []
        for new in out[:, width:].tolist():  # after its stop, a row holds only padding
            end = next((i + 1 for i, t in enumerate(new) if t in ends["eos_token_id"]), None)
            answers.append(finished(self.tokenizer, new[:end], self.end_of_turn_id, max_new_tokens))
        return answers

    def _ends(self) -> dict[str, Any]:
        """What stops an answer (the end-of-turn token, the model's own ends) and what pads it."""
        pad = self.tokenizer.pad_token_id
        return {
            "eos_token_id": list(dict.fromkeys([self.end_of_turn_id, *_eos_ids(self.model)])),
            "pad_token_id": pad if pad is not None else self.end_of_turn_id,
        }

    @contextmanager
    def _generating(self, base: bool) -> Iterator[None]:
        """One generation at a time, with the adapter off for the base model, no gradients."""
        import torch

        with self._lock, self._adapter_off() if base else nullcontext(), torch.no_grad():
            yield

    @contextmanager
    def _adapter_off(self) -> Iterator[None]:
        """The base model: PEFT's ``disable_adapter`` on the same weights."""
        if not self.has_adapter:
            yield
            return
        with self.model.disable_adapter():
            yield


class _Streamer:
    """A transformers streamer that keeps the token ids, to tell a clean stop from a cut.

    Text is decoded from all ids so far and only whole characters are released, so
    a multi-byte character split across tokens never shows as a replacement mark.
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._sent = ""
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() passes the prompt first
            self._prompt_seen = True
            return
        self.ids.extend(int(i) for i in value.reshape(-1).tolist())
        now = time.monotonic()
        self.first_token_at = self.first_token_at or now
        self.last_token_at = now
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return
        if len(text) > len(self._sent) and text.startswith(self._sent):
            self._queue.put(text[len(self._sent) :])
            self._sent = text

    def end(self) -> None:
        self._queue.put(None)

    def texts(self) -> Iterator[str]:
        while (piece := self._queue.get()) is not None:
            yield piece

    def answer(self, started: float, end_of_turn_id: int, budget: int) -> Answer:
        rate = None
        if self.first_token_at and self.last_token_at and len(self.ids) > 1:
            span = self.last_token_at - self.first_token_at
            rate = (len(self.ids) - 1) / span if span > 0 else None
        ttft = self.first_token_at - started if self.first_token_at else None
        return finished(self.tokenizer, self.ids, end_of_turn_id, budget, ttft, rate)


def finished(
    tokenizer: Any,
    ids: list[int],
    end_of_turn_id: int,
    budget: int,
    ttft_s: float | None = None,
    tokens_per_s: float | None = None,
) -> Answer:
    """The answer the generated ``ids`` make, and whether it ended or ran into ``budget``."""
    ended = bool(ids) and ids[-1] == end_of_turn_id
    return Answer(
        text=tokenizer.decode(ids, skip_special_tokens=True),
        tokens=len(ids),
        cut=not ended and len(ids) >= budget,
        ended_cleanly=ended,
        ttft_s=ttft_s,
        tokens_per_s=tokens_per_s,
    )


def _eos_ids(model: Any) -> list[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    return [] if eos is None else [eos] if isinstance(eos, int) else list(eos)


def keep_to_the_runs_card(run_dir: str | Path) -> None:
    """For a process that only loads the run's student (chat, eval, export), before CUDA
    starts: every card hidden but the first the run trained on, so none gets a context."""
    from engine.train.distributed import keep_to_one_card

    keep_to_one_card(RunDir(run_dir).plan().training.gpus, serving=True)


def load_student(run_dir: str | Path, *, base_only: bool = False) -> Student:
    """The run's base model plus its adapter (or the base model alone), ready to answer."""
    from engine.cpu_threads import let_idle_threads_sleep

    let_idle_threads_sleep()  # before torch loads in this process (chat, eval, export)
    from engine.hub import student_on_disk

    run = RunDir(run_dir)
    plan = student_on_disk(run.plan())  # a ModelScope student: its folder
    adapter = run.adapter
    if not base_only and adapter is None:
        raise UserError(
            _("{name} has no adapter yet").format(name=run.name),
            hint=_(
                "It appears when training finishes or is cancelled; `stillroom runs` shows "
                "the state. --base talks to the base model alone."
            ),
        )
    return load_model(plan, None if base_only else adapter)


def load_model(plan: Plan, adapter: Path | None = None) -> Student:
    """The plan's base model, with ``adapter`` on it when given, on the backend training uses."""
    from engine.stdout import chatter_to_stderr
    from engine.train.backend_choice import choose_backend

    backend, _reason = choose_backend(plan)
    with chatter_to_stderr():
        if backend == "unsloth":
            model, tokenizer = _load_unsloth(plan, adapter)
        else:
            model, tokenizer = _load_hf(plan, adapter)
    model.eval()
    return Student(model, tokenizer, plan, has_adapter=adapter is not None, backend=backend)


def _load_unsloth(plan: Plan, adapter: Path | None) -> tuple[Any, Any]:
    """Unsloth's fast inference mode; given the adapter folder it loads base and LoRA together."""
    import unsloth  # noqa: F401 - first, before transformers and peft
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(adapter or plan.student.model),
        max_seq_length=plan.student.max_seq_length,
        load_in_4bit=plan.student.load_in_4bit,
        dtype=None,
    )
    FastLanguageModel.for_inference(model)
    # Unsloth sets max_length to the context length; every answer gives max_new_tokens, so
    # transformers would log "Both max_new_tokens and max_length" once per answer.
    model.generation_config.max_length = None
    return model, tokenizer


def _load_hf(plan: Plan, adapter: Path | None) -> tuple[Any, Any]:
    """transformers + PEFT: the base in its own dtype on a GPU, float32 on the CPU."""
    import torch
    from transformers import AutoModelForCausalLM

    from engine.data.render import load_tokenizer

    cuda = torch.cuda.is_available()
    tokenizer = load_tokenizer(str(adapter or plan.student.model))
    model = AutoModelForCausalLM.from_pretrained(
        plan.student.model, dtype="auto" if cuda else torch.float32
    )
    if cuda:
        model = model.to("cuda")
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    return model, tokenizer


@dataclass
class TeacherAnswer:
    """The teacher's answer, or why there is none (no key, unreachable)."""

    text: str = ""
    note: str = ""
    latency_s: float | None = None


@dataclass
class Comparison:
    """One prompt answered by the student, the base model and (maybe) the teacher."""

    student: Answer
    base: Answer
    teacher: TeacherAnswer = field(default_factory=TeacherAnswer)


def ask_teacher(
    teacher: TeacherPlan, messages: list[Message], system: str | None = None
) -> TeacherAnswer:
    """The teacher's answer through its API; a missing key or an outage becomes a note."""
    from engine.teacher.client import Gate, api_key, chat_with_retries, make_client

    if not teacher.model:
        return TeacherAnswer(note=_("the plan names no teacher model"))
    chat = (
        [{"role": "system", "content": system or teacher.system}]
        if system or teacher.system
        else []
    )
    chat += [{"role": m["role"], "content": m["content"]} for m in messages]

    async def once() -> TeacherAnswer:
        key = api_key(teacher)
        client = make_client(teacher, key)
        try:
            reply = await chat_with_retries(client, teacher, chat, key, Gate())
        finally:
            await client.close()
        return TeacherAnswer(text=reply.content, latency_s=reply.latency_s)

    try:
        return asyncio.run(once())
    except UserError as error:
        return TeacherAnswer(note=_("teacher skipped: {why}").format(why=error.message))
    except Exception as error:  # noqa: BLE001 - the student's answers still stand
        why = f"{type(error).__name__}: {error}"
        return TeacherAnswer(note=_("teacher skipped: {why}").format(why=why))


def compare(
    student: Student,
    messages: list[Message],
    *,
    system: str | None = None,
    with_teacher: bool = True,
    **options: Any,
) -> Comparison:
    """One prompt, three answers: student, base (adapter off, same weights), teacher."""
    return Comparison(
        student=student.answer(messages, system=system, **options),
        base=student.answer(messages, system=system, base=True, **options),
        teacher=ask_teacher(student.plan.teacher, messages, system)
        if with_teacher
        else TeacherAnswer(note=_("teacher not asked")),
    )
