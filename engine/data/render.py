"""Render conversations with the student's own chat template into ids and loss masks.

The student learns only what its assistant turns say: every other token (system
prompt, user turns, role headers) gets the label -100. Each assistant turn's
span is found by rendering the template itself (the conversation up to that
turn with ``add_generation_prompt=True`` is a prefix of the whole), never by a
hand-written copy of it, and must hold exactly one end-of-turn token, which is
trained so the student learns to stop. Gates here raise :class:`UserError`
before any GPU time is spent on data that would teach nothing or the wrong thing.

Module imports stay stdlib-only: transformers arrives with the tokenizer.
"""

from __future__ import annotations

import bisect
import math
import re
import statistics
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from engine.data.types import Conversation, Message
from engine.errors import UserError
from engine.i18n import _

if TYPE_CHECKING:
    from engine.hub import Source

IGNORE_INDEX = -100
Overflow = Literal["drop", "truncate"]

_CHUNK_ROWS = 1024
# A row is rendered and tokenised whole only up to this many characters of content (or 8 per
# token of max_seq_length, if more); a longer one is cut there first, and its cut, if already
# over max_seq_length, proves it too long at a bounded cost (one hostile 50 MB row, tokenised
# whole, took over 7 GB of memory; cut, 0.5 GB).
_MIN_CHAR_BUDGET = 2**18
_CHARS_PER_TOKEN = 8
_PROBE_USER = "Stillroom probe question"
_PROBE_ANSWER = "Stillroom probe answer"
# Control markers as chat templates spell them: <|im_end|>, <|eot_id|>, <｜Assistant｜>.
_MARKER = re.compile(r"<\|[^\s|<>]+\|>|<｜[^\s｜<>]+｜>")
# Looser, for naming whatever a foreign template ends its turns with: <end_of_turn>, [/INST].
_ANY_MARKER = re.compile(r"<[^\s<>]{1,40}>|\[/?[A-Z_]{2,20}\]")
_SHOWN_ROWS = 5


@dataclass(frozen=True)
class ChatFormat:
    """What the student's template writes around an answer, found by rendering a probe.

    ``answer_opener`` is the generation prompt from its last control token on, e.g.
    ``<|im_start|>assistant\\n`` ("" if it has none); ``end_of_turn`` closes the answer.
    """

    end_of_turn: str
    end_of_turn_id: int
    answer_opener: str


@dataclass
class RenderedRow:
    """One conversation as token ids; ``spans`` are the trained ``[start, end)`` token ranges."""

    row: int
    input_ids: array  # array("i"): a compact list of ints; list(row.input_ids) for a plain list
    spans: list[tuple[int, int]]

    @property
    def labels(self) -> list[int]:
        """``input_ids`` where trained, -100 elsewhere: what the loss sees."""
        labels = [IGNORE_INDEX] * len(self.input_ids)
        for start, end in self.spans:
            labels[start:end] = self.input_ids[start:end]
        return labels

    @property
    def trained_tokens(self) -> int:
        return sum(end - start for start, end in self.spans)


@dataclass
class OverflowReport:
    """Rows longer than ``max_seq_length`` and what the policy does to their answers.

    ``answer_cut_partly`` rows would keep some trained tokens (usually losing the
    end-of-turn, so they never learn to stop there); ``answer_cut_entirely`` rows
    have every trained token beyond the limit and would teach nothing. ``measured_in_part``
    rows were so long that only their start was tokenised (their lengths are lower bounds).
    """

    max_seq_length: int
    policy: Overflow
    too_long: int = 0
    answer_cut_partly: int = 0
    answer_cut_entirely: int = 0
    dropped: int = 0
    measured_in_part: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_seq_length": self.max_seq_length,
            "policy": self.policy,
            "too_long": self.too_long,
            "answer_cut_partly": self.answer_cut_partly,
            "answer_cut_entirely": self.answer_cut_entirely,
            "dropped": self.dropped,
            "measured_in_part": self.measured_in_part,
        }


@dataclass
class RenderedSet:
    """Rows ready for training plus what a user should see before spending GPU time.

    ``lengths`` are full token lengths before any truncation, one per conversation in
    input order (dropped rows included), so the stats describe the data as given.
    ``gate`` is the pre-flight failure that would stop training, kept here (rather
    than raised) only when the caller asked to see the stats anyway.
    """

    rows: list[RenderedRow]
    lengths: list[int]
    overflow: OverflowReport
    chat_format: ChatFormat
    no_answer_rows: list[int] = field(default_factory=list)
    gate: UserError | None = None

    @property
    def trained_tokens(self) -> int:
        return sum(row.trained_tokens for row in self.rows)

    @property
    def total_tokens(self) -> int:
        return sum(len(row.input_ids) for row in self.rows)

    def token_stats(self) -> dict[str, Any]:
        return token_stats(self.lengths, self.overflow.max_seq_length)

    def too_long_rows(self, conversations: list[Conversation]) -> list[int]:
        """The rows, of the ``conversations`` rendered, longer than ``max_seq_length``."""
        limit = self.overflow.max_seq_length
        return [c.row for c, n in zip(conversations, self.lengths, strict=True) if n > limit]


class Segment(NamedTuple):
    """A run of text that is either all trained or all masked, for highlighting."""

    text: str
    trained: bool


def load_tokenizer(model_id_or_path: str, source: Source = "huggingface") -> Any:
    """The student's tokenizer (hub id or local folder), checked to have a chat template.

    ``source="modelscope"`` fetches a hub id from ModelScope, as training will.
    """
    from engine.hub import from_modelscope, locate_model

    locate_model(model_id_or_path, whole=False, source=source)
    if source == "modelscope":
        model_id_or_path = from_modelscope(model_id_or_path)
    from engine.stdout import chatter_to_stderr

    try:
        with chatter_to_stderr():
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(model_id_or_path)
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(
            _("Could not load a tokenizer from {model_id_or_path}: {reason}").format(
                model_id_or_path=model_id_or_path, reason=reason
            ),
            hint=_(
                "Check that the student model folder holds tokenizer.json (or pick another student "
                "model)."
            ),
        ) from None
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(
            _("The tokenizer of {model_id_or_path!r} has no chat template.").format(
                model_id_or_path=model_id_or_path
            ),
            hint=_(
                "Pick a chat model (usually its -Instruct variant), e.g. "
                "unsloth/Qwen2.5-1.5B-Instruct."
            ),
        )
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        raise UserError(
            _("The tokenizer of {model_id_or_path!r} is not a fast (Rust) tokenizer.").format(
                model_id_or_path=model_id_or_path
            ),
            hint=_(
                "Stillroom needs character offsets to mask prompts; pick a model with "
                "tokenizer.json."
            ),
        )
    return tokenizer


def inspect_chat_template(tokenizer: Any) -> ChatFormat:
    """Render a probe conversation and check the template belongs to this tokenizer.

    Fails when the template uses control markers the tokenizer does not know as
    single tokens (a template copied from another model), ends an assistant turn
    with no end-of-turn token (the student would never learn to stop), or with
    two of them (the reference notebook's hand-made template did this).
    """
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(
            _("The student's tokenizer has no chat template."),
            hint=_("Pick a chat model (usually its -Instruct variant)."),
        )
    from jinja2 import TemplateError

    probe: list[Message] = [
        {"role": "user", "content": _PROBE_USER},
        {"role": "assistant", "content": _PROBE_ANSWER},
    ]
    try:
        prompt = tokenizer.apply_chat_template(
            probe[:1], tokenize=False, add_generation_prompt=True
        )
        full = tokenizer.apply_chat_template(probe, tokenize=False)
    except TemplateError as error:
        raise UserError(
            _(
                "The student's chat template cannot render a plain question and answer: {error}"
            ).format(error=error),
            hint=_("Use the chat template the student ships with."),
        ) from None
    foreign = sorted({m for m in _MARKER.findall(full) if not _is_single_token(tokenizer, m)})
    if foreign:
        raise UserError(
            _(
                "The chat template uses {foreign}, which this tokenizer does not know as single "
                "tokens: the template was written for another model."
            ).format(foreign=", ".join(foreign)),
            hint=_("Remove the custom chat template and use the one the student ships with."),
        )
    if not full.startswith(prompt) or _PROBE_ANSWER not in full[len(prompt) :]:
        raise UserError(
            _(
                "The chat template does not render a conversation as its prompt followed by the "
                "answer, so Stillroom cannot tell which tokens the student should learn."
            ),
            hint=_("Use the chat template the student ships with."),
        )
    turn = full[len(prompt) :]
    after = turn[turn.index(_PROBE_ANSWER) + len(_PROBE_ANSWER) :]
    end_of_turn = _first_added_token(tokenizer, after)
    if end_of_turn is None:
        marker = _ANY_MARKER.search(after)
        if marker:
            raise UserError(
                _(
                    "The chat template ends an assistant turn with {group!r}, which is not a token "
                    "of this tokenizer: the template was written for another model."
                ).format(group=marker.group()),
                hint=_("Use the chat template the student ships with."),
            )
        raise UserError(
            _(
                "The chat template ends an assistant turn with {after!r}: no end-of-turn token, so "
                "the student would never learn to stop."
            ).format(after=after),
            hint=_("Pick a chat model (usually its -Instruct variant) whose template ends turns."),
        )
    if after.count(end_of_turn) > 1:
        raise UserError(
            _(
                "The chat template puts {end_of_turn} {count} times after each answer: the student "
                "would learn a turn ending its own chat format never uses."
            ).format(end_of_turn=end_of_turn, count=after.count(end_of_turn)),
            hint=_(
                "Drop the extra end-of-turn (often an added `eos_token`) from the template, or "
                "remove the custom template and use the student's own."
            ),
        )
    opener = _last_added_token(tokenizer, prompt)
    return ChatFormat(
        end_of_turn,
        tokenizer.convert_tokens_to_ids(end_of_turn),
        prompt[prompt.rindex(opener) :] if opener else "",
    )


def assistant_content(answer: str, reasoning: str | None, train_on_reasoning: bool) -> str:
    """The text the student learns to write: the answer, after the reasoning if wanted."""
    if reasoning and train_on_reasoning:
        return f"<think>\n{reasoning}\n</think>\n\n{answer}"
    return answer


def render_conversations(
    conversations: Iterable[Conversation],
    tokenizer: Any,
    *,
    max_seq_length: int,
    overflow: Overflow = "drop",
    train_on_reasoning: bool = False,
    raise_gates: bool = True,
) -> RenderedSet:
    """Tokenize conversations with masks, apply the overflow policy, and run the gates.

    Conversations with no answer to learn are left out and listed in ``no_answer_rows``.
    Raises :class:`UserError` if the template is not the student's, if an answer's span
    lacks its end-of-turn token or holds it twice, or if nothing would be trained; with
    ``raise_gates=False`` the last two are returned in ``gate`` instead, so a report can
    still show the lengths that explain them.
    Chunks are tokenized in a thread while the next chunk's template renders.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    renderer = _Renderer(tokenizer, max_seq_length, overflow, train_on_reasoning)
    pending: tuple[_Chunk, Future] | None = None
    with ThreadPoolExecutor(max_workers=1) as pool:
        for batch in _batches(conversations, _CHUNK_ROWS):
            chunk = renderer.prepare(batch)
            future = pool.submit(renderer.encode, chunk.texts)
            if pending:
                renderer.finish(pending[0], pending[1].result())
            pending = chunk, future
        if pending:
            renderer.finish(pending[0], pending[1].result())
    result = renderer.done()
    if result.gate and raise_gates:
        raise result.gate
    return result


def token_stats(lengths: list[int], max_seq_length: int) -> dict[str, Any]:
    """Min, median, 95th percentile and max tokens per row, and how many exceed the limit."""
    if not lengths:
        return {"rows": 0, "min": None, "median": None, "p95": None, "max": None, "too_long": 0}
    ordered = sorted(lengths)
    return {
        "rows": len(ordered),
        "min": ordered[0],
        "median": statistics.median(ordered),
        "p95": ordered[math.ceil(0.95 * len(ordered)) - 1],
        "max": ordered[-1],
        "too_long": len(ordered) - bisect.bisect_right(ordered, max_seq_length),
    }


def preview_segments(row: RenderedRow, tokenizer: Any) -> list[Segment]:
    """The row's text cut into alternating masked and trained runs, for highlighting."""
    segments: list[Segment] = []
    cursor = 0
    for start, end in [*row.spans, (len(row.input_ids), len(row.input_ids))]:
        for a, b, trained in ((cursor, start, False), (start, end, True)):
            if b > a:
                text = tokenizer.decode(list(row.input_ids[a:b]), skip_special_tokens=False)
                segments.append(Segment(text, trained))
        cursor = end
    return segments


class _Chunk(NamedTuple):
    rows: list[int]
    texts: list[str]
    answers: list[list[tuple[int, int]]]  # per row: (answer start, end-of-turn end) in chars


class _Renderer:
    """One call's state: the template, how to find answers, and the rows kept so far."""

    def __init__(
        self, tokenizer: Any, max_seq_length: int, overflow: Overflow, train_on_reasoning: bool
    ):
        chat_format = inspect_chat_template(tokenizer)
        self.template = _Template(tokenizer)
        self.locator = _Locator.for_tokenizer(tokenizer, chat_format)
        self.backend = tokenizer.backend_tokenizer
        self.train_on_reasoning = train_on_reasoning
        self.result = RenderedSet([], [], OverflowReport(max_seq_length, overflow), chat_format)
        self.bad_turns: list[tuple[int, str]] = []
        self.char_budget = max(_MIN_CHAR_BUDGET, (max_seq_length + 1) * _CHARS_PER_TOKEN)

    def prepare(self, batch: list[Conversation]) -> _Chunk:
        """Render each conversation and find its answers' character spans."""
        end_of_turn = self.result.chat_format.end_of_turn
        chunk = _Chunk([], [], [])
        for conversation in batch:
            text, turns = self._render_bounded(conversation)
            answers = []
            for start, stop in turns:
                count = text.count(end_of_turn, start, stop)
                if count == 1:
                    answers.append((start, text.index(end_of_turn, start) + len(end_of_turn)))
                else:
                    self.bad_turns.append(
                        (conversation.row, "missing" if not count else "repeated")
                    )
            chunk.rows.append(conversation.row)
            chunk.texts.append(text)
            chunk.answers.append(answers)
        return chunk

    def encode(self, texts: list[str]) -> list[Any]:
        """Token ids without offsets: tracking offsets doubles the tokenizer's cost."""
        return self.backend.encode_batch_fast(texts, add_special_tokens=False)

    def finish(self, chunk: _Chunk, encodings: list[Any]) -> None:
        """Turn answer character spans into token spans and keep the rows."""
        ids = [array("i", e.ids) for e in encodings]
        spans = [
            self.locator.locate(text, row_ids, answers) if self.locator else None
            for text, row_ids, answers in zip(chunk.texts, ids, chunk.answers, strict=True)
        ]
        slow = [i for i, row_spans in enumerate(spans) if row_spans is None]
        if slow:
            offsets = self.backend.encode_batch([chunk.texts[i] for i in slow], False)
            for i, encoding in zip(slow, offsets, strict=True):
                spans[i] = [_token_span(encoding, a, b) for a, b in chunk.answers[i]]
        for row, row_ids, row_spans in zip(chunk.rows, ids, spans, strict=True):
            self.result.lengths.append(len(row_ids))
            row_spans = [(a, b) for a, b in row_spans or () if b > a]
            if row_spans:
                self._keep(row, row_ids, row_spans)
            else:
                self.result.no_answer_rows.append(row)

    def done(self) -> RenderedSet:
        if self.bad_turns:
            self.result.gate = _end_of_turn_error(
                self.bad_turns, self.result.chat_format.end_of_turn
            )
        elif not self.result.rows:
            self.result.gate = _nothing_trained_error(self.result)
        return self.result

    def _render_bounded(self, conversation: Conversation) -> tuple[str, list[tuple[int, int]]]:
        """:meth:`_render`, of the conversation cut to the character budget if it is longer.

        The cut is kept once its tokens pass ``max_seq_length``: those tokens are the
        whole row's first ones, so dropping or truncating it comes out the same. Rows
        with many characters per token double the budget until they pass, or fit whole.
        """
        chat = _messages_to_train(conversation, self.train_on_reasoning)
        budget = self.char_budget
        while (cut := _clip(chat, budget)) is not None:
            text, turns = self._render(cut, conversation.row)
            if len(self.encode([text])[0].ids) > self.result.overflow.max_seq_length:
                self.result.overflow.measured_in_part += 1
                return text, turns
            budget *= 2
        return self._render(chat, conversation.row)

    def _render(self, chat: list[Message], row: int) -> tuple[str, list[tuple[int, int]]]:
        """The whole text, and for each assistant turn the span from the end of its
        prompt (rendered with the generation prompt) to the end of the turn (rendered
        through it); both renderings must be prefixes of the whole. An assistant
        message that opens a conversation answers nothing and stays context."""
        from jinja2 import TemplateError

        try:
            text = self.template(chat)
            turns = []
            for m, message in enumerate(chat):
                if message["role"] != "assistant" or m == 0:
                    continue
                prompt = self.template(chat[:m], add_generation_prompt=True)
                through = text if m + 1 == len(chat) else self.template(chat[: m + 1])
                if not (text.startswith(prompt) and text.startswith(through)):
                    raise UserError(
                        _(
                            "Row {row}: the chat template renders earlier turns differently once "
                            "later turns follow, so Stillroom cannot tell which tokens are the "
                            "answer."
                        ).format(row=row),
                        hint=_(
                            "Use the chat template the student ships with, or single-turn data."
                        ),
                    )
                turns.append((len(prompt), len(through)))
        except TemplateError as error:
            raise UserError(
                _("Row {row}: the student's chat template refuses it: {error}").format(
                    row=row, error=error
                ),
                hint=_(
                    "Fix the conversation's roles (most templates want user and assistant turns to "
                    "alternate), or drop the row."
                ),
            ) from None
        return text, turns

    def _keep(self, row: int, ids: array, spans: list[tuple[int, int]]) -> None:
        """Keep the row, unless the overflow policy drops it."""
        report = self.result.overflow
        limit = report.max_seq_length
        if len(ids) > limit:
            report.too_long += 1
            nothing_left = spans[0][0] >= limit
            if spans[-1][1] > limit:
                if nothing_left:
                    report.answer_cut_entirely += 1
                else:
                    report.answer_cut_partly += 1
            if report.policy == "drop" or nothing_left:
                report.dropped += 1
                return
            ids = ids[:limit]
            spans = [(start, min(end, limit)) for start, end in spans if start < limit]
        self.result.rows.append(RenderedRow(row, ids, spans))


class _Template:
    """The student's chat template, rendered exactly as ``apply_chat_template`` renders it
    (same compiled template, globals and special tokens) minus its per-call set-up, which
    costs as much as the rendering. Leans on transformers' template compiler, which the
    pinned version provides; a test checks both give the same text."""

    def __init__(self, tokenizer: Any):
        from transformers.utils.chat_template_utils import _compile_jinja_template

        self.compiled = _compile_jinja_template(tokenizer.get_chat_template())
        self.variables = {
            **self.compiled.globals,
            **tokenizer.special_tokens_map,
            "tools": None,
            "documents": None,
        }

    def __call__(self, messages: list[Message], add_generation_prompt: bool = False) -> str:
        variables = {
            **self.variables,
            "messages": messages,
            "add_generation_prompt": add_generation_prompt,
        }
        context = self.compiled.new_context(variables, shared=True)
        return "".join(self.compiled.root_render_func(context))


class _Locator:
    """Finds answer tokens from ids alone, without character offsets.

    An answer starts after the k-th opener control token (``<|im_start|>``) and the
    header tokens that follow it (``assistant\\n``), and ends at the k-th end-of-turn
    token, with k counted in the text. Used only for control tokens that are matched
    verbatim and lie inside no other added token, so text and ids hold the same
    occurrences. ``locate`` returns ``None`` when a row's tokens do not split cleanly
    where its answer starts (an answer opening with a newline can merge with the
    header's); that row then takes the offsets path.
    """

    def __init__(self, tokenizer: Any, chat_format: ChatFormat, opener: str):
        self.eot = chat_format.end_of_turn
        self.eot_id = chat_format.end_of_turn_id
        self.opener_text = chat_format.answer_opener
        self.opener = opener
        self.opener_id = tokenizer.convert_tokens_to_ids(opener)
        header = self.opener_text[len(opener) :]
        self.header_ids = array("i", tokenizer.encode(header, add_special_tokens=False))

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, chat_format: ChatFormat) -> _Locator | None:
        opener = _last_added_token(tokenizer, chat_format.answer_opener)
        if not opener:
            return None
        added = {t.content: t for t in tokenizer.added_tokens_decoder.values()}
        for token in (opener, chat_format.end_of_turn):
            if added[token].normalized or any(token in o and o != token for o in added):
                return None
        return cls(tokenizer, chat_format, opener)

    def locate(
        self, text: str, ids: array, answers: list[tuple[int, int]]
    ) -> list[tuple[int, int]] | None:
        spans = []
        for start, end in answers:
            if not text.startswith(self.opener_text, start - len(self.opener_text)):
                return None
            opener_at = _nth_index(ids, self.opener_id, text.count(self.opener, 0, start))
            eot_at = _nth_index(ids, self.eot_id, text.count(self.eot, 0, end))
            first = opener_at + 1 + len(self.header_ids)
            if opener_at < 0 or eot_at < first or ids[opener_at + 1 : first] != self.header_ids:
                return None
            spans.append((first, eot_at + 1))
        return spans


def _nth_index(ids: array, token_id: int, n: int) -> int:
    """Index of the ``n``-th (1-based) occurrence of ``token_id``, or -1."""
    at = -1
    try:
        for _ in range(n):
            at = ids.index(token_id, at + 1)
    except ValueError:
        return -1
    return at


def _batches(items: Iterable[Conversation], size: int) -> Iterator[list[Conversation]]:
    batch: list[Conversation] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _messages_to_train(conversation: Conversation, train_on_reasoning: bool) -> list[Message]:
    """The messages as the template should see them, reasoning folded into the last answer."""
    messages = [{"role": m["role"], "content": m["content"]} for m in conversation.messages]
    if conversation.reasoning and train_on_reasoning:
        answers = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        if answers:
            last = messages[answers[-1]]
            last["content"] = assistant_content(last["content"], conversation.reasoning, True)
    return messages


def _clip(chat: list[Message], budget: int) -> list[Message] | None:
    """The messages cut to ``budget`` characters of content, or ``None`` when they fit.

    Turns after the cut keep their place, empty, up to the first answer, so a row whose
    prompt alone is too long still shows where its answer would have started.
    """
    if sum(len(m["content"]) for m in chat) <= budget:
        return None
    cut: list[Message] = []
    left = budget
    for index, message in enumerate(chat):
        cut.append({"role": message["role"], "content": message["content"][:left]})
        left = max(0, left - len(message["content"]))
        if not left and message["role"] == "assistant" and index > 0:
            break
    return cut


def _token_span(encoding: Any, start: int, end: int) -> tuple[int, int]:
    """Tokens that overlap characters ``[start, end)``."""
    first = encoding.char_to_token(start)
    last = encoding.char_to_token(end - 1)
    if first is None or last is None:  # characters no token covers (trimmed offsets)
        offsets = encoding.offsets
        covered = [i for i, (a, b) in enumerate(offsets) if a < end and b > start]
        return (covered[0], covered[-1] + 1) if covered else (0, 0)
    return first, last + 1


def _first_added_token(tokenizer: Any, text: str) -> str | None:
    """The added (control) token that occurs first in ``text``, if any."""
    found = [(text.find(token), -len(token), token) for token in tokenizer.get_added_vocab()]
    found = [item for item in found if item[0] >= 0]
    return min(found)[2] if found else None


def _last_added_token(tokenizer: Any, text: str) -> str | None:
    """The added (control) token that occurs last in ``text``, if any."""
    found = [(text.rfind(t) + len(t), len(t), t) for t in tokenizer.get_added_vocab() if t in text]
    return max(found)[2] if found else None


def _is_single_token(tokenizer: Any, text: str) -> bool:
    return len(tokenizer.encode(text, add_special_tokens=False)) == 1


def _end_of_turn_error(bad_turns: list[tuple[int, str]], end_of_turn: str) -> UserError:
    rows = sorted({row for row, _ in bad_turns})
    shown = ", ".join(str(r) for r in rows[:_SHOWN_ROWS]) + (
        " ..." if len(rows) > _SHOWN_ROWS else ""
    )
    if any(kind == "repeated" for _, kind in bad_turns):
        return UserError(
            _(
                "{n_rows} row(s) have an answer with more than one {end_of_turn} (rows {shown}): "
                "the student would learn to stop in the middle of an answer."
            ).format(n_rows=len(rows), end_of_turn=end_of_turn, shown=shown),
            hint=_("Remove the literal {end_of_turn} from those answers.").format(
                end_of_turn=end_of_turn
            ),
        )
    return UserError(
        _(
            "{n_rows} row(s) have an answer with no {end_of_turn} after it (rows {shown}): the "
            "student would never learn to stop."
        ).format(n_rows=len(rows), end_of_turn=end_of_turn, shown=shown),
        hint=_("Use the chat template the student ships with."),
    )


def _nothing_trained_error(result: RenderedSet) -> UserError:
    report = result.overflow
    if report.dropped and report.policy == "drop":
        return UserError(
            _(
                "Every row is longer than max_seq_length={max_seq_length} tokens, and overflow = "
                "drop leaves nothing to train on."
            ).format(max_seq_length=report.max_seq_length),
            hint=_(
                "Raise student.max_seq_length (the stats show the p95 length), or set "
                'dataset.overflow = "truncate" to keep the start of each answer.'
            ),
        )
    if report.dropped:
        return UserError(
            _(
                "Every answer lies beyond max_seq_length={max_seq_length} tokens, so nothing is "
                "left to train on."
            ).format(max_seq_length=report.max_seq_length),
            hint=_(
                "Raise student.max_seq_length (the stats show the p95 length) or shorten prompts."
            ),
        )
    return UserError(
        _("No conversation has an assistant answer to train on: every token would be masked."),
        hint=_("Check the column mapping: the response column must map to the assistant."),
    )
