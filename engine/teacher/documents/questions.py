"""The two requests made per chunk, and the strict reading of the first one's reply.

Stage one asks for ``{"questions": [...]}`` with ``response_format`` set to
``json_object``. Not every OpenAI-compatible server honours that, so a reply
that is not pure JSON is searched for the one JSON object in it (a fenced block,
or prose around it); a reply with no such object is a failed chunk, never a
guess at questions. Stage two asks one question with the chunk and its heading
path as context, so the answer comes from the document, not the teacher's memory.
"""

from __future__ import annotations

import json
import re

from engine.teacher.documents.chunk import Chunk

QUESTION_TOKENS = 40  # a question, as the forecast counts it
ASK_TOKENS = 160  # the instructions around a chunk in either request
MIN_WORDS = 3  # a shorter "question" is a fragment (CJK text counts characters / 4)

QUESTIONS_SYSTEM = (
    "You write the questions people working in a field ask, for a question-answering "
    "dataset. You reply with JSON only."
)


def questions_request(chunk: Chunk, n: int) -> list[dict[str, str]]:
    """The chat asking for ``n`` questions that ``chunk`` answers."""
    user = (
        f"Document: {chunk.title}\nSection: {chunk.heading}\n\n"
        f"<excerpt>\n{chunk.text}\n</excerpt>\n\n"
        f"Write {n} questions that a reader working in this field would ask and that the "
        "excerpt answers. Each question must stand on its own: name what it is about, and "
        "never mention 'the excerpt', 'the text' or 'the document'. Write them in the "
        'language of the excerpt. Reply with JSON of the form {"questions": ["...", "..."]}.'
    )
    return [{"role": "system", "content": QUESTIONS_SYSTEM}, {"role": "user", "content": user}]


def answer_request(system: str, chunk: Chunk, question: str) -> list[dict[str, str]]:
    """The chat asking one question, grounded in its chunk; ``system`` is the plan's."""
    user = (
        f"Reference: {chunk.title}, {chunk.heading}\n\n<reference>\n{chunk.text}\n</reference>\n\n"
        "Answer the question below as an expert in this field would, using the facts in "
        "the reference. Do not mention the reference; if it does not cover something, say "
        f"what it does cover.\n\nQuestion: {question}"
    )
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": user}]


_FENCED = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)


def parse_questions_json(text: str) -> list[str] | None:
    """The questions of a ``{"questions": [...]}`` reply, or ``None`` when there are none.

    Strict JSON first; then a fenced block; then the outermost ``{...}`` in the
    text. Entries that are not strings, or are fragments, are dropped.
    """
    for candidate in _candidates(text):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        questions = value.get("questions") if isinstance(value, dict) else None
        if isinstance(questions, list):
            kept = [" ".join(q.split()) for q in questions if isinstance(q, str) and _whole(q)]
            return kept or None
    return None


def _candidates(text: str) -> list[str]:
    stripped = text.strip()
    found = [stripped, *_FENCED.findall(stripped)]
    start, end = stripped.find("{"), stripped.rfind("}")
    if 0 <= start < end:
        found.append(stripped[start : end + 1])
    return found


def _whole(question: str) -> bool:
    words = len(question.split())
    wide = sum(1 for ch in question if ord(ch) > 0x2E7F)
    return words + wide // 4 >= MIN_WORDS
