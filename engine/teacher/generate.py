"""The generation job: prompts in, an append-only textbook of teacher answers out.

``run(teacher, emit, should_stop)`` is synchronous (it drives its own asyncio
loop), knows nothing of the UI and reports through events: ``started``,
``progress`` (done/failed/in flight, tokens, cost, ETA), ``log``/``warning``,
then exactly one of ``finished``, ``cancelled`` or ``error``. At most
``concurrency`` requests are in flight; each finished answer is on disk before
it counts, so running the same job again only asks what is still unanswered.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from math import ceil
from pathlib import Path
from typing import Any

from engine import events as ev
from engine.errors import UserError
from engine.fileio import append_jsonl, read_jsonl
from engine.i18n import N_, _
from engine.plan import TeacherPlan
from engine.teacher import quality
from engine.teacher.client import (
    Gate,
    PromptRejected,
    Reply,
    Retryable,
    TeacherError,
    api_key,
    chat_with_retries,
    estimate_tokens,
    fetch_models,
    make_client,
)
from engine.teacher.prompts import (
    QUESTIONS_PER_REQUEST,
    Diversity,
    Prompt,
    dedupe,
    parse_questions,
    question_request,
    read_prompts,
    system_prompt,
    teacher_language,
)
from engine.teacher.providers import Price, price_for
from engine.teacher.reasoning import split_reasoning
from engine.teacher.store import Store, done_keys, prompt_key, repair_tail

Emit = Callable[[ev.Event], None]
JOB = "generate"
ANSWERS = "answers"  # the progress stages: questions (topic and documents jobs), then answers
QUESTIONS = "questions"
PROGRESS_EVERY_S = 0.5
ASSUMED_ANSWER_TOKENS = 500  # for estimates, until earlier answers give a measured mean
QUESTION_TOKENS = 25
FILE_SUFFIXES = {".txt", ".jsonl", ".json", ".csv", ".tsv", ".parquet"}

_FLAG_WORDS = {  # flag: (what happened to N answers, what to do); translated where shown
    quality.LENGTH: (
        N_("{count} answers were cut at max_tokens (marked {flag!r} in meta.flags)"),
        N_("Raise max_tokens (--max-tokens)."),
    ),
    quality.EMPTY: (
        N_("{count} answers are empty (marked {flag!r} in meta.flags)"),
        N_("A reasoning model may have spent all of max_tokens thinking: raise it."),
    ),
    quality.REFUSAL: (
        N_("{count} answers are refusals (marked {flag!r} in meta.flags)"),
        N_("Rephrase or drop those prompts."),
    ),
}


def _never() -> bool:
    return False


@dataclass
class Summary:
    """How a generation job ended. ``stopped``: complete | incomplete | budget | cancelled | error."""

    output: str
    total: int = 0
    already: int = 0
    answered: int = 0
    failed: int = 0
    flagged: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    elapsed_s: float = 0.0
    retries: int = 0
    stopped: str = "complete"
    first_failure: str = ""
    diversity: Diversity | None = None
    error: UserError | None = None
    failed_chunks: int = 0  # documents: chunks the teacher wrote no usable questions for
    corpus: Any = None  # documents: what was read (engine.teacher.documents.job.Corpus)

    @property
    def done(self) -> int:
        return self.already + self.answered

    @property
    def complete(self) -> bool:
        return self.error is None and self.done == self.total and not self.failed_chunks


@dataclass(frozen=True)
class Estimate:
    """A dry run's forecast, made from the prompts and the price table alone."""

    prompts: int
    already: int
    to_send: int
    prompt_tokens: int
    answer_tokens_each: int
    answer_tokens_measured: bool
    max_tokens: int
    price: Price | None
    diversity: Diversity | None

    @property
    def completion_tokens(self) -> int:
        return self.to_send * self.answer_tokens_each

    def cost_usd(self, completion_tokens: int | None = None) -> float | None:
        if self.price is None:
            return None
        tokens = self.completion_tokens if completion_tokens is None else completion_tokens
        return self.price.cost(self.prompt_tokens, tokens)

    @property
    def cost_max_usd(self) -> float | None:
        return self.cost_usd(self.to_send * self.max_tokens)


def price_of(teacher: TeacherPlan) -> Price | None:
    return price_for(
        teacher.provider, teacher.model, teacher.price_input_per_mtok, teacher.price_output_per_mtok
    )


def questions_path(teacher: TeacherPlan) -> Path:
    """Topic questions are bought too, so they are kept beside the answers."""
    out = Path(teacher.output)
    return out.with_name(out.stem + ".questions.jsonl")


def _messages(teacher: TeacherPlan, prompt: Prompt) -> list[dict[str, str]]:
    system = prompt.system if prompt.system is not None else teacher.system
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": prompt.user}]


def in_language(teacher: TeacherPlan, prompts: list[Prompt], done: set[str]) -> TeacherPlan:
    """The teacher asked in the language of the data: the default system prompt in Chinese
    when the prompts (or the topic) are Chinese, unless ``teacher.language`` says otherwise.

    The plan's own system prompt always wins, and a run whose answers were already bought
    under the current system prompt keeps it, so resuming never pays for them twice.
    """
    texts = [teacher.topic] if teacher.topic else [p.user for p in prompts]
    language = teacher_language(teacher.language, texts)
    system = system_prompt(teacher.system, language)
    if system == teacher.system or any(_key(teacher, p) in done for p in prompts):
        return teacher
    return teacher.model_copy(update={"system": system, "language": language})


def _key(teacher: TeacherPlan, prompt: Prompt) -> str:
    messages = _messages(teacher, prompt)
    return prompt_key(messages[0]["content"] if len(messages) == 2 else None, prompt.user)


def refuse_output_over_prompts(teacher: TeacherPlan) -> None:
    """Refuse an output file that is the prompt file, by any path (``./x``, a link, a hard link).

    Answers are appended to the output, so they would land among the prompts, and
    the next run would pay for them as new questions.
    """
    if teacher.topic or not teacher.prompts:
        return
    try:
        same = os.path.samefile(teacher.prompts, teacher.output)
    except OSError:  # either one missing (a new output file, a hub id): not the same file
        return
    if same:
        same = (
            _(
                "the output file {output} is the prompt file {prompts}: answers would be "
                "appended to your prompts"
            )
            if Path(teacher.prompts) == Path(teacher.output)
            else _(
                "the output file {output} is the prompt file {prompts} (the same file by another "
                "path): answers would be appended to your prompts"
            )
        )
        raise UserError(
            same.format(output=teacher.output, prompts=teacher.prompts),
            hint=_(
                "Give the answers their own file: --out teacher.jsonl (teacher.output in a plan)."
            ),
        )


def _file_prompts(teacher: TeacherPlan) -> tuple[list[Prompt], Diversity]:
    if not teacher.prompts:
        raise UserError(
            _("no prompts given"), hint=_("Pass --prompts FILE, or --topic TEXT --count N.")
        )
    path = Path(teacher.prompts)
    if not path.exists() and (path.suffix.lower() in FILE_SUFFIXES or "/" not in teacher.prompts):
        raise UserError(
            _("prompt file {prompts} not found").format(prompts=teacher.prompts),
            hint=_("Give a text file (one prompt a line), a JSONL/CSV/Parquet file or a hub id."),
        )
    prompts, diversity = dedupe(read_prompts(teacher.prompts), teacher.dedupe_threshold)
    return prompts[: teacher.limit], diversity


def _mean_answer_tokens(path: str) -> int | None:
    tokens = [r["meta"]["completion_tokens"] for r in read_jsonl(path) if "meta" in r]
    return round(sum(tokens) / len(tokens)) if len(tokens) >= 5 else None


def estimate(teacher: TeacherPlan) -> Estimate:
    """Forecast tokens and cost without sending anything (no key needed).

    Topic runs count ``count`` questions of about 25 tokens plus the requests
    that write them. Input is priced at the cache-miss rate, so this errs high.
    """
    measured = _mean_answer_tokens(teacher.output)
    each = measured or min(teacher.max_tokens, ASSUMED_ANSWER_TOKENS)
    system_tokens = estimate_tokens(teacher.system)
    if teacher.topic:
        asks = ceil(teacher.count / QUESTIONS_PER_REQUEST)
        prompt_tokens = teacher.count * (system_tokens + QUESTION_TOKENS) + asks * 300
        prompts, already, diversity = teacher.count, 0, None
        to_send = teacher.count
        prompt_tokens += asks * QUESTIONS_PER_REQUEST * QUESTION_TOKENS  # the questions' own text
    else:
        refuse_output_over_prompts(teacher)
        chosen, diversity = _file_prompts(teacher)
        done = done_keys(teacher.output)
        teacher = in_language(teacher, chosen, done)
        pending = [p for p in chosen if _key(teacher, p) not in done]
        prompts, already, to_send = len(chosen), len(chosen) - len(pending), len(pending)
        prompt_tokens = sum(
            sum(estimate_tokens(m["content"]) + 4 for m in _messages(teacher, p)) for p in pending
        )
    return Estimate(
        prompts=prompts,
        already=already,
        to_send=to_send,
        prompt_tokens=prompt_tokens,
        answer_tokens_each=min(each, teacher.max_tokens),
        answer_tokens_measured=measured is not None,
        max_tokens=teacher.max_tokens,
        price=price_of(teacher),
        diversity=diversity,
    )


def result(summary: Summary, teacher: TeacherPlan) -> ev.Result:
    """What a generation wrote and counted: the ``result`` event before its ending.

    ``flagged`` when some answers were written but need a look (cut, empty, refusals).
    """
    paths = {"answers": summary.output}
    if questions_path(teacher).exists():  # the questions a topic or documents job bought
        paths["questions"] = str(questions_path(teacher))
    counts: dict[str, float] = {
        "total": summary.total,
        "done": summary.done,
        "already": summary.already,
        "answered": summary.answered,
        "failed": summary.failed,
        "failed_chunks": summary.failed_chunks,
        "retries": summary.retries,
        "prompt_tokens": summary.prompt_tokens,
        "completion_tokens": summary.completion_tokens,
        **{f"flagged_{flag}": n for flag, n in summary.flagged.items()},
    }
    if summary.cost_usd is not None:
        counts["cost_usd"] = summary.cost_usd
    words = _("{done} of {total} prompts answered ({answered} now), {failed} failed").format(
        done=summary.done, total=summary.total, answered=summary.answered, failed=summary.failed
    )
    return ev.Result(
        job=JOB, paths=paths, flagged=bool(summary.flagged), summary=words, counts=counts
    )


def run(teacher: TeacherPlan, emit: Emit, should_stop: Callable[[], bool] = _never) -> Summary:
    """Answer every prompt not yet in ``teacher.output``; never raises for user errors.

    A user-fixable failure (missing key, bad model, no balance...) ends the job
    with an ``error`` event and is returned in ``Summary.error``. A plan naming
    ``documents`` runs the two-stage documents job (questions, then answers).
    """
    if teacher.documents:
        from engine.teacher.documents.job import DocumentsJob

        job: _Job = DocumentsJob(teacher, emit, should_stop)
    else:
        job = _Job(teacher, emit, should_stop)
    try:
        asyncio.run(job.main())
    except UserError as error:
        job.summary.error = error
        job.summary.stopped = "error"
    return job.finish()


class _Job:
    """The state of one run; every method runs on the job's event loop thread.

    Its hooks (:meth:`prompts`, :meth:`request`, :meth:`record_meta`, :meth:`key_of`,
    :meth:`done_keys`) are what the documents job changes; the rest is shared.
    """

    def __init__(self, teacher: TeacherPlan, emit: Emit, should_stop: Callable[[], bool]):
        self.teacher = teacher
        self.emit = emit
        self.should_stop = should_stop
        self.price = price_of(teacher)
        self.summary = Summary(output=teacher.output, cost_usd=0.0 if self.price else None)
        self.in_flight = 0
        self.started = time.monotonic()
        self.gate = Gate()
        self.flags: Counter[str] = Counter()
        self.fatal: TeacherError | None = None
        self.key = ""
        self.client: Any = None
        self.stage_spent = 0.0  # cost before the current stage (documents: the questions)

    # -- accounting ---------------------------------------------------------------

    def _account(self, reply: Reply) -> float | None:
        s = self.summary
        s.prompt_tokens += reply.prompt_tokens
        s.completion_tokens += reply.completion_tokens
        if self.price is None:
            return None
        cost = self.price.cost(reply.prompt_tokens, reply.completion_tokens)
        s.cost_usd = (s.cost_usd or 0.0) + cost
        return cost

    def progress(self, stage: str = ANSWERS) -> None:
        """Where the job stands; ``stage`` is ``questions`` while a topic or documents job
        buys its questions (``done``/``total`` count those), then ``answers``."""
        s = self.summary
        elapsed = time.monotonic() - self.started
        remaining = s.total - s.done
        eta = remaining * elapsed / s.answered if s.answered and remaining else None
        self.emit(
            ev.Progress(
                job=JOB,
                stage=stage,
                done=s.done,
                total=s.total,
                failed=s.failed,
                in_flight=self.in_flight,
                prompt_tokens=s.prompt_tokens,
                completion_tokens=s.completion_tokens,
                cost_usd=s.cost_usd or 0.0,
                elapsed_s=elapsed,
                eta_s=0.0 if not remaining else eta,
            )
        )

    def _on_retry(self, reason: str) -> None:
        self.summary.retries += 1

    def over_budget(self, messages: list[dict[str, str]]) -> bool:
        """Would one more request (of ``messages``) risk passing the cap, counting those in flight?

        Each costs the mean of this stage's requests so far; before the first, the worst case.
        """
        budget = self.teacher.budget_usd
        if budget is None or self.price is None:
            return False
        s = self.summary
        if s.answered:
            each = ((s.cost_usd or 0.0) - self.stage_spent) / s.answered
        else:  # no answer yet: assume the worst, every answer at max_tokens
            asked = sum(estimate_tokens(m["content"]) for m in messages)
            each = self.price.cost(asked, self.teacher.max_tokens)
        return (s.cost_usd or 0.0) + (self.in_flight + 1) * each > budget

    # -- hooks ------------------------------------------------------------------------

    def check_input(self) -> None:
        """Refuse bad input before the endpoint is called (a typo fails at once, for free)."""
        refuse_output_over_prompts(self.teacher)

    async def prompts(self) -> tuple[list[Prompt], Diversity]:
        """What to answer: the teacher's own questions on a topic, or the prompt file's."""
        if self.teacher.topic:
            return await self._topic_prompts()
        return _file_prompts(self.teacher)

    def request(self, prompt: Prompt) -> list[dict[str, str]]:
        """The messages sent for ``prompt``; the record keeps them with the answer."""
        return _messages(self.teacher, prompt)

    def record_messages(self, prompt: Prompt) -> list[dict[str, str]]:
        """The messages a record keeps before the answer (what the student learns from)."""
        return self.request(prompt)

    def record_meta(self, prompt: Prompt) -> dict[str, Any]:
        """Fields a record's ``meta`` gets besides the request's numbers."""
        return {}

    def key_of(self, prompt: Prompt) -> str:
        return _key(self.teacher, prompt)

    def done_keys(self, store: Store) -> set[str]:
        return store.done_keys()

    # -- the job ----------------------------------------------------------------------

    async def main(self) -> None:
        teacher = self.teacher
        self.check_input()
        if teacher.budget_usd is not None and self.price is None:
            raise UserError(
                _("budget_usd is set but the price of {model} is unknown").format(
                    model=teacher.model
                ),
                hint=_(
                    "Set price_input_per_mtok and price_output_per_mtok (USD per million tokens)."
                ),
            )
        store = Store(teacher.output)
        if store.repaired_bytes:
            self.emit(
                ev.Warning(
                    message=_("cut a torn last line ({repaired_bytes} bytes) from {path}").format(
                        repaired_bytes=store.repaired_bytes, path=store.path
                    ),
                    hint=_(
                        "An answer was being written when the last run was killed; it is asked "
                        "again."
                    ),
                )
            )
        self.key = api_key(teacher)
        async with make_client(teacher, self.key) as self.client:
            await self._preflight()
            prompts, diversity = await self.prompts()
            self.summary.diversity = diversity
            self.emit(ev.Log(line=_("prompts: {diversity}").format(diversity=diversity.describe())))
            done = self.done_keys(store)
            asked = in_language(teacher, prompts, done)
            if asked.system != teacher.system:
                line = _("system prompt: {system!r}, in the language of the prompts").format(
                    system=asked.system
                )
                self.emit(ev.Log(line=line))
            self.teacher = teacher = asked
            pending = [p for p in prompts if self.key_of(p) not in done]
            self.summary.total = len(prompts)
            self.summary.already = len(prompts) - len(pending)
            self.emit(
                ev.Started(
                    job=JOB,
                    backend="api",
                    backend_reason=f"the plan's {teacher.provider} endpoint",
                    device=teacher.base_url,
                    model=teacher.model,
                    plan_hash=hashlib.sha256(teacher.model_dump_json().encode()).hexdigest()[:12],
                    max_steps=len(prompts),
                    pid=os.getpid(),
                )
            )
            self.started = time.monotonic()
            self.stage_spent = self.summary.cost_usd or 0.0
            if self.summary.stopped != "budget":  # the questions may have spent it already
                await self._answer_all(store, pending)

    async def _preflight(self) -> None:
        """Ask ``/models`` first: a wrong URL or key fails in a second, for free."""
        teacher = self.teacher
        models = await fetch_models(self.client, teacher, self.key)
        if not teacher.model:
            if len(models) != 1:
                raise TeacherError(
                    "model",
                    _("no model named, and the endpoint serves {count}: {models}").format(
                        count=len(models), models=", ".join(models[:20])
                    )
                    if models
                    else _("no model named, and the endpoint lists none"),
                    hint=_("Pass --model with one of those ids."),
                )
            self.teacher = teacher = teacher.model_copy(update={"model": models[0]})
            line = _("model: {model} (the only one the endpoint serves)").format(model=models[0])
            self.emit(ev.Log(line=line))
        elif models and not {teacher.model, f"{teacher.model}:latest"} & set(models):
            raise TeacherError(
                "model",
                _("{base_url} does not serve the model {model!r}").format(
                    base_url=teacher.base_url, model=teacher.model
                ),
                hint=_("Pick one it lists with --model: {models}").format(
                    models=", ".join(models[:20])
                ),
            )

    async def _topic_prompts(self) -> tuple[list[Prompt], Diversity]:
        """Have the teacher write ``count`` distinct questions, keeping each batch it sends."""
        teacher = self.teacher
        path = questions_path(teacher)
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(path)
        written = [
            Prompt(r["question"])
            for r in read_jsonl(path)
            if r.get("topic") == teacher.topic and isinstance(r.get("question"), str)
        ]
        kept, start = dedupe(written, teacher.dedupe_threshold)
        given, exact, near = len(written), start.exact_duplicates, start.near_duplicates
        stale_rounds = 0
        while len(kept) < teacher.count and stale_rounds < 3 and not self._stopping():
            self.summary.total = teacher.count
            self.summary.already = len(kept)
            self.progress(QUESTIONS)
            need = teacher.count - len(kept)
            asks = [
                question_request(
                    teacher.topic,
                    min(QUESTIONS_PER_REQUEST, need),
                    [p.user for p in kept],
                    teacher_language(teacher.language, [teacher.topic]),
                )
                for _ in range(min(teacher.concurrency, ceil(need / QUESTIONS_PER_REQUEST)))
            ]
            calls = [
                chat_with_retries(
                    self.client,
                    teacher,
                    ask,
                    self.key,
                    self.gate,
                    self._on_retry,
                    temperature=max(teacher.temperature, 1.0),
                )
                for ask in asks
            ]
            replies = await asyncio.gather(*calls, return_exceptions=True)
            fresh = []
            for reply in replies:
                if isinstance(reply, TeacherError):
                    raise reply
                if isinstance(reply, BaseException):  # retries ran out; the round counts as stale
                    self.summary.first_failure = self.summary.first_failure or str(reply)
                    continue
                self._account(reply)
                fresh += [Prompt(q) for q in parse_questions(split_reasoning(reply.content)[0])]
            grown, step = dedupe(kept + fresh, teacher.dedupe_threshold)
            new = grown[len(kept) :]
            given, exact, near = (
                given + len(fresh),
                exact + step.exact_duplicates,
                near + step.near_duplicates,
            )
            for prompt in new:
                append_jsonl(path, {"topic": teacher.topic, "question": prompt.user}, fsync=False)
            stale_rounds = stale_rounds + 1 if len(new) < max(1, need // 10) else 0
            kept = grown
        if len(kept) < teacher.count:
            self.emit(
                ev.Warning(
                    message=_("the teacher wrote {n_kept} distinct questions of {count}").format(
                        n_kept=len(kept), count=teacher.count
                    ),
                    hint=_(
                        "Broaden the topic, or raise dedupe_threshold to keep closer questions."
                    ),
                )
            )
        kept = kept[: teacher.count][: teacher.limit]
        self.summary.total = self.summary.already = 0
        return kept, Diversity(given, len(kept), exact, near, dedupe(kept, 0)[1].distinct_2)

    def _stopping(self) -> bool:
        return self.fatal is not None or self.should_stop()

    async def _answer_all(self, store: Store, pending: list[Prompt]) -> None:
        loop = asyncio.get_running_loop()
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="teacher-writer")

        async def answer(prompt: Prompt) -> None:
            record = await self._answer(prompt)
            if record is not None:
                await loop.run_in_executor(writer, store.append, record)
                self.summary.answered += 1
                self.progress()  # each answer on disk is said at once, between the ticks

        try:
            await self.drain(pending, answer, lambda p: self.over_budget(self.request(p)))
        finally:
            writer.shutdown(wait=True)

    async def drain(
        self,
        items: list[Any],
        handle: Callable[[Any], Any],
        over_budget: Callable[[Any], bool],
        stage: str = ANSWERS,
    ) -> None:
        """``handle`` every item, ``concurrency`` at a time, with progress; stop when asked,
        at the budget (``stopped = "budget"``) or on a fatal error (raised at the end)."""
        queue = list(reversed(items))

        async def worker() -> None:
            while queue and not self._stopping():
                if over_budget(queue[-1]):
                    self.summary.stopped = "budget"
                    return
                item = queue.pop()
                self.in_flight += 1
                try:
                    await handle(item)
                finally:
                    self.in_flight -= 1

        async def ticker() -> None:
            while True:
                self.progress(stage)
                await asyncio.sleep(PROGRESS_EVERY_S)

        ticking = asyncio.create_task(ticker())
        try:
            workers = min(self.teacher.concurrency, len(items))
            await asyncio.gather(*(worker() for _ in range(workers)))
        finally:
            ticking.cancel()
        self.progress(stage)
        if self.fatal is not None:
            raise self.fatal

    async def _answer(self, prompt: Prompt) -> dict[str, Any] | None:
        """One prompt to one record, or ``None`` when it failed (and is asked next run)."""
        messages = self.request(prompt)
        try:
            reply = await chat_with_retries(
                self.client, self.teacher, messages, self.key, self.gate, self._on_retry
            )
        except (Retryable, PromptRejected) as failure:
            self.summary.failed += 1
            self.summary.first_failure = self.summary.first_failure or str(failure)
            return None
        except TeacherError as error:
            self.fatal = self.fatal or error
            return None
        cost = self._account(reply)
        answer, reasoning = split_reasoning(reply.content, reply.reasoning_content)
        flags = quality.flags(answer, reply.finish_reason)
        self.flags.update(flags)
        meta: dict[str, Any] = {
            "model": reply.model,
            "finish_reason": reply.finish_reason,
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "latency_s": round(reply.latency_s, 3),
            "flags": flags,
        }
        if cost is not None:
            meta["cost_usd"] = round(cost, 8)
        if reply.usage_estimated:
            meta["usage_estimated"] = True
        meta.update(self.record_meta(prompt))
        kept = self.record_messages(prompt)
        record: dict[str, Any] = {"messages": [*kept, {"role": "assistant", "content": answer}]}
        if reasoning:
            record["reasoning"] = reasoning
        record["meta"] = meta
        return record

    # -- the end ------------------------------------------------------------------------

    def finish(self) -> Summary:
        """Settle ``stopped``, emit the warnings and the one terminal event."""
        s = self.summary
        s.elapsed_s = time.monotonic() - self.started
        s.flagged = {flag: self.flags[flag] for flag in quality.FLAGS if self.flags[flag]}
        for flag, count in s.flagged.items():
            what, todo = _FLAG_WORDS[flag]
            self.emit(
                ev.Warning(
                    message=_(what).format(count=count, flag=flag),
                    hint=_(todo),
                )
            )
        if s.error is not None:
            s.stopped = "error"
            self.emit(
                ev.Error(
                    kind=getattr(s.error, "kind", "input"), message=str(s.error), hint=s.error.hint
                )
            )
        elif s.stopped == "budget":
            self.emit(
                ev.Warning(
                    message=_("stopped at the budget of ${budget_usd:g}").format(
                        budget_usd=self.teacher.budget_usd
                    ),
                    hint=_("Run the same command again (with a new budget) to finish."),
                )
            )
            self.emit(ev.Cancelled(step=s.done))
        elif self.should_stop():
            s.stopped = "cancelled"
            self.emit(ev.Cancelled(step=s.done))
        elif s.failed or s.failed_chunks:
            s.stopped = "incomplete"
            what = []
            if s.failed:
                what.append(
                    _(
                        "{failed} prompts failed after {max_retries} retries ({first_failure})"
                    ).format(
                        failed=s.failed,
                        max_retries=self.teacher.max_retries,
                        first_failure=s.first_failure,
                    )
                )
            if s.failed_chunks:
                what.append(
                    _("{n} chunks got no usable questions ({first_failure})").format(
                        n=s.failed_chunks, first_failure=s.first_failure
                    )
                )
            self.emit(
                ev.Error(
                    kind="incomplete",
                    message="; ".join(what),
                    hint=_("Run the same command again: only the unanswered prompts are asked."),
                )
            )
        else:
            s.stopped = "complete"
            self.emit(ev.Finished(runtime_s=s.elapsed_s, steps=s.answered))
        return s
