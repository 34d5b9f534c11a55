"""The documents job: read, chunk, ask questions per chunk, then answer each from its chunk.

It is the generation job (``engine.teacher.generate``) with two changes: its
prompts come from a questions stage over the chunks, and each answer is asked
with its chunk as context while the record keeps only the plan's system prompt
and the question (the student learns to answer without the document at hand).

What is bought is kept: each chunk's questions go to ``<out>.questions.jsonl``
(by chunk hash) the moment they arrive, each answer to the output file with
``meta.source``. A question is done when a record with its chunk hash and text
exists, so kills, resumes and edited folders pay only for what is new.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import events as ev
from engine.errors import UserError
from engine.fileio import append_jsonl, read_jsonl
from engine.i18n import _
from engine.plan import TeacherPlan
from engine.teacher.client import (
    PromptRejected,
    Retryable,
    TeacherError,
    chat_with_retries,
    estimate_tokens,
)
from engine.teacher.documents.chunk import Chunk, chunk_document
from engine.teacher.documents.extract import (
    ALIASES,
    SUFFIXES,
    Document,
    Skipped,
    find_files,
    read,
)
from engine.teacher.documents.questions import (
    answer_request,
    parse_questions_json,
    questions_request,
)
from engine.teacher.generate import QUESTIONS, _Job, _messages, questions_path
from engine.teacher.prompts import Diversity, Prompt, dedupe
from engine.teacher.reasoning import split_reasoning
from engine.teacher.store import Store, prompt_key, repair_tail

HELD_OUT_EVERY = 20  # about one question in 20 of each document is kept for eval
HELD_OUT_MIN_QUESTIONS = 4  # a document with this many questions holds out at least one
SKIPPED_SHOWN = 10  # skipped files warned about one by one; the rest are counted


@dataclass
class Corpus:
    """What was read: documents, files skipped with their reasons, and the chunks."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return sum(d.pages or 0 for d in self.documents)

    @property
    def tokens(self) -> int:
        return sum(c.tokens for c in self.chunks)

    def unique_chunks(self) -> list[Chunk]:
        """One chunk per hash: the same text under the same headings is asked about once."""
        seen: dict[str, Chunk] = {}
        for chunk in self.chunks:
            seen.setdefault(chunk.hash, chunk)
        return list(seen.values())

    def describe(self) -> str:
        return _(
            "{documents} documents ({pages} PDF pages), {chunks} chunks, ~{tokens} tokens; "
            "{skipped} files skipped"
        ).format(
            documents=len(self.documents),
            pages=self.pages,
            chunks=len(self.chunks),
            tokens=f"{self.tokens:,}",
            skipped=len(self.skipped),
        )


def read_corpus(teacher: TeacherPlan) -> Corpus:
    """Read and chunk ``teacher.documents``; the output and questions files are never read."""
    files = find_files(teacher.documents, [Path(teacher.output), questions_path(teacher)])
    corpus = Corpus()
    for path in files:
        result = read(path)
        if isinstance(result, Skipped):
            corpus.skipped.append(result)
        else:
            corpus.documents.append(result)
            corpus.chunks += chunk_document(result, teacher.chunk_tokens)
    if not corpus.chunks:
        reasons = "; ".join(f"{s.file}: {s.reason}" for s in corpus.skipped[:5])
        raise UserError(
            _("no text to write questions from in {paths} ({reasons})").format(
                paths=", ".join(teacher.documents), reasons=reasons or _("no files found")
            ),
            hint=_("Give .txt, .md, .pdf, .docx or .html files that hold text."),
        )
    return corpus


def asked_chunks(teacher: TeacherPlan) -> dict[str, list[str]]:
    """The questions already bought, by chunk hash (torn lines skipped)."""
    return {
        r["chunk_hash"]: r["questions"]
        for r in read_jsonl(questions_path(teacher))
        if isinstance(r.get("chunk_hash"), str) and isinstance(r.get("questions"), list)
    }


def answered_keys(path: str | Path) -> set[str]:
    """Keys (chunk hash + question) of the records already in the output file."""
    keys = set()
    for record in read_jsonl(path):
        source = (record.get("meta") or {}).get("source") or {}
        user = next(
            (m.get("content") for m in record.get("messages", []) if m.get("role") == "user"), None
        )
        if isinstance(source.get("chunk_hash"), str) and isinstance(user, str):
            keys.add(prompt_key(source["chunk_hash"], user))
    return keys


def question_prompts(
    teacher: TeacherPlan, corpus: Corpus, asked: dict[str, list[str]]
) -> tuple[list[Prompt], Diversity, dict[str, tuple[Chunk, bool]]]:
    """Every question on file for a chunk still in the documents, near duplicates dropped.

    Returns the prompts, what the filter did, and each question's chunk and
    whether it is held out for eval.
    """
    origin: dict[str, Chunk] = {}
    prompts = []
    for chunk in corpus.chunks:
        for question in asked.get(chunk.hash, ()):
            origin.setdefault(question, chunk)
            prompts.append(Prompt(question))
    kept, diversity = dedupe(prompts, teacher.dedupe_threshold)
    kept = kept[: teacher.limit]
    return kept, diversity, _held_out(kept, origin)


def _held_out(kept: list[Prompt], origin: dict[str, Chunk]) -> dict[str, tuple[Chunk, bool]]:
    """Mark about one question in 20 of each document (at least one of four) for eval.

    Chosen by the question's hash, so the choice is the same on every run.
    """
    keys = {p.user: int(prompt_key(origin[p.user].hash, p.user), 16) for p in kept}
    by_file: dict[str, list[str]] = {}
    for prompt in kept:
        by_file.setdefault(origin[prompt.user].file, []).append(prompt.user)
    held = {q for q in keys if keys[q] % HELD_OUT_EVERY == 0}
    for questions in by_file.values():
        if len(questions) >= HELD_OUT_MIN_QUESTIONS:
            held.add(min(questions, key=keys.__getitem__))
    return {q: (origin[q], q in held) for q in keys}


class DocumentsJob(_Job):
    """Questions from chunks, then answers grounded in them; see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.origin: dict[str, tuple[Chunk, bool]] = {}
        self.json_mode = True  # off once the endpoint refuses response_format

    def check_input(self) -> None:
        """Read the documents before the endpoint is called: a wrong path fails at once.

        An output file named like a document is refused: answers are appended to it,
        and it may be one of the user's documents.
        """
        output = Path(self.teacher.output)
        if output.suffix.lower() in (*SUFFIXES, *ALIASES):
            raise UserError(
                _(
                    "the output file {path} is named like a document: answers would be appended to it"
                ).format(path=output),
                hint=_("Give the answers their own file: --out teacher.jsonl."),
            )
        self.summary.corpus = read_corpus(self.teacher)

    async def prompts(self) -> tuple[list[Prompt], Diversity]:
        teacher = self.teacher
        corpus: Corpus = self.summary.corpus
        self.emit(ev.Log(line=_("documents: {what}").format(what=corpus.describe())))
        for skipped in corpus.skipped[:SKIPPED_SHOWN]:
            hint = "" if skipped.scanned else _("It is left out of the questions.")
            message = _("skipped {file}: {reason}").format(file=skipped.file, reason=skipped.reason)
            self.emit(ev.Warning(message=message, hint=hint))
        if len(corpus.skipped) > SKIPPED_SHOWN:
            more = _("{n} more files skipped (`--dry-run` lists them all)")
            self.emit(ev.Warning(message=more.format(n=len(corpus.skipped) - SKIPPED_SHOWN)))
        for document in corpus.documents:
            if document.image_pages:
                message = _(
                    "{file}: page(s) {pages} are scanned images with no text; they are left out"
                ).format(file=document.file, pages=", ".join(map(str, document.image_pages[:10])))
                hint = _("Run OCR on the file (for example ocrmypdf) to include them.")
                self.emit(ev.Warning(message=message, hint=hint))
        path = questions_path(teacher)
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_tail(path)
        asked = asked_chunks(teacher)
        chunks = corpus.unique_chunks()
        todo = [c for c in chunks if c.hash not in asked]
        await self._ask_questions(todo, len(chunks), asked, path)
        prompts, diversity, self.origin = question_prompts(teacher, corpus, asked)
        return prompts, diversity

    async def _ask_questions(
        self, todo: list[Chunk], total: int, asked: dict[str, list[str]], path: Path
    ) -> None:
        """Stage one: questions for each chunk without them, each batch on disk as it comes."""
        s = self.summary
        s.total, s.already, s.answered = total, total - len(todo), 0
        n = self.teacher.questions_per_chunk

        async def ask(chunk: Chunk) -> None:
            questions = await self._questions_for(chunk)
            if questions is not None:
                record = {"chunk_hash": chunk.hash, "chunk": chunk.id, "questions": questions}
                append_jsonl(path, record, fsync=True)
                asked[chunk.hash] = questions
                s.answered += 1

        try:
            await self.drain(
                todo, ask, lambda c: self.over_budget(questions_request(c, n)), QUESTIONS
            )
        finally:
            s.failed_chunks, s.failed = s.failed, 0
            s.total = s.already = s.answered = 0

    async def _questions_for(self, chunk: Chunk) -> list[str] | None:
        """One chunk's questions, or ``None`` (counted as failed, asked again next run)."""
        n = self.teacher.questions_per_chunk
        extra = {"response_format": {"type": "json_object"}} if self.json_mode else {}
        try:
            reply = await chat_with_retries(
                self.client,
                self.teacher,
                questions_request(chunk, n),
                self.key,
                self.gate,
                self._on_retry,
                **extra,
            )
        except (Retryable, PromptRejected) as failure:
            return self._chunk_failed(f"{chunk.id}: {failure}")
        except TeacherError as error:
            if error.kind == "request" and self.json_mode:
                self.json_mode = False
                line = _("the endpoint refused response_format ({error}); asking without it")
                self.emit(ev.Log(line=line.format(error=error)))
                return await self._questions_for(chunk)
            self.fatal = self.fatal or error
            return None
        self._account(reply)
        answer = split_reasoning(reply.content, reply.reasoning_content)[0]
        questions = parse_questions_json(answer)
        if questions is None:
            why = _('{chunk}: the reply held no {{"questions": [...]}} JSON: {reply}')
            return self._chunk_failed(why.format(chunk=chunk.id, reply=repr(answer[:80])))
        return questions[:n]

    def _chunk_failed(self, why: str) -> None:
        self.summary.failed += 1
        self.summary.first_failure = self.summary.first_failure or why
        return None

    # -- the generation job's hooks -------------------------------------------------------

    def request(self, prompt: Prompt) -> list[dict[str, str]]:
        chunk = self.origin[prompt.user][0]
        return answer_request(self.teacher.system, chunk, prompt.user)

    def record_messages(self, prompt: Prompt) -> list[dict[str, str]]:
        return _messages(self.teacher, prompt)

    def record_meta(self, prompt: Prompt) -> dict[str, Any]:
        chunk, held_out = self.origin[prompt.user]
        return {"source": chunk.source(), "heldout": held_out}

    def key_of(self, prompt: Prompt) -> str:
        return prompt_key(self.origin[prompt.user][0].hash, prompt.user)

    def done_keys(self, store: Store) -> set[str]:
        return answered_keys(store.path)


@dataclass(frozen=True)
class DocumentsEstimate:
    """A dry run's forecast for both stages, from the documents and the price table alone."""

    corpus: Corpus
    chunks_done: int  # chunks whose questions are on file
    question_requests: int
    question_prompt_tokens: int
    question_completion_tokens: int
    questions_known: int  # on file, for chunks still in the documents
    answers_done: int
    answers_to_send: int  # known questions unanswered + those the new chunks will bring
    answer_prompt_tokens: int
    answer_tokens_each: int
    answer_tokens_measured: bool
    max_tokens: int
    price: Any

    @property
    def prompt_tokens(self) -> int:
        return self.question_prompt_tokens + self.answer_prompt_tokens

    @property
    def completion_tokens(self) -> int:
        return self.question_completion_tokens + self.answers_to_send * self.answer_tokens_each

    def cost_usd(self) -> float | None:
        return (
            None
            if self.price is None
            else self.price.cost(self.prompt_tokens, self.completion_tokens)
        )

    @property
    def cost_max_usd(self) -> float | None:
        requests = self.question_requests + self.answers_to_send
        return (
            None
            if self.price is None
            else self.price.cost(self.prompt_tokens, requests * self.max_tokens)
        )


def estimate(teacher: TeacherPlan) -> DocumentsEstimate:
    """Forecast both stages without sending anything (no key needed)."""
    from engine.teacher.documents.questions import ASK_TOKENS, QUESTION_TOKENS
    from engine.teacher.generate import ASSUMED_ANSWER_TOKENS, _mean_answer_tokens, price_of

    corpus = read_corpus(teacher)
    asked = asked_chunks(teacher)
    chunks = corpus.unique_chunks()
    todo = [c for c in chunks if c.hash not in asked]
    n = teacher.questions_per_chunk

    def tokens(messages: list[dict[str, str]]) -> int:
        return sum(estimate_tokens(m["content"]) + 4 for m in messages)

    prompts, _diversity, origin = question_prompts(teacher, corpus, asked)
    done = answered_keys(teacher.output)
    pending = [p for p in prompts if prompt_key(origin[p.user][0].hash, p.user) not in done]
    answer_in = sum(
        tokens(answer_request(teacher.system, origin[p.user][0], p.user)) for p in pending
    )
    system = estimate_tokens(teacher.system)
    answer_in += sum(n * (c.tokens + ASK_TOKENS + QUESTION_TOKENS + system) for c in todo)
    measured = _mean_answer_tokens(teacher.output)
    return DocumentsEstimate(
        corpus=corpus,
        chunks_done=len(chunks) - len(todo),
        question_requests=len(todo),
        question_prompt_tokens=sum(tokens(questions_request(c, n)) for c in todo),
        question_completion_tokens=len(todo) * (n * QUESTION_TOKENS + 20),
        questions_known=len(prompts),
        answers_done=len(prompts) - len(pending),
        answers_to_send=len(pending) + n * len(todo),
        answer_prompt_tokens=answer_in,
        answer_tokens_each=min(measured or ASSUMED_ANSWER_TOKENS, teacher.max_tokens),
        answer_tokens_measured=measured is not None,
        max_tokens=teacher.max_tokens,
        price=price_of(teacher),
    )
