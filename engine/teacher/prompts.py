"""Where the teacher's prompts come from, and the filter that keeps them distinct.

Three sources: a text file (one prompt a line), a JSONL file with a ``prompt``
field, or any dataset the foundation can normalise (its user turns are
re-answered by the teacher, e.g. Alpaca's instructions). Topic-driven runs ask
the teacher for questions first; :func:`question_request` and
:func:`parse_questions` are the two halves of that exchange. Pure Python.
"""

from __future__ import annotations

import re
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from engine.errors import UserError
from engine.i18n import _


@dataclass(frozen=True)
class Prompt:
    """One question for the teacher; ``system`` overrides the plan's when the source has one."""

    user: str
    system: str | None = None
    row: int = 0


@dataclass(frozen=True)
class Diversity:
    """What the near-duplicate filter did, in numbers a user can judge."""

    given: int
    kept: int
    exact_duplicates: int
    near_duplicates: int
    distinct_2: float  # unique word bigrams / all word bigrams among the kept prompts

    def describe(self) -> str:
        return _(
            "{kept} distinct prompts of {given} ({exact} exact and {near} near duplicates "
            "dropped); distinct-2 {distinct_2:.2f}"
        ).format(
            kept=self.kept,
            given=self.given,
            exact=self.exact_duplicates,
            near=self.near_duplicates,
            distinct_2=self.distinct_2,
        )


TEXT_SUFFIXES = {".txt", ".text", ".prompts", ""}


def read_prompts(path: str | Path) -> list[Prompt]:
    """Read prompts from a text file (one a line) or from a dataset file or hub id."""
    source = Path(path)
    if source.suffix.lower() in TEXT_SUFFIXES and source.is_file():
        return _read_lines(source)
    return _read_dataset(str(path))


def _read_lines(path: Path) -> list[Prompt]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(
            _("{path} is not UTF-8 text").format(path=path),
            hint=_("Save the prompt file as UTF-8, one prompt a line."),
        ) from None
    prompts = [Prompt(line.strip(), row=n) for n, line in enumerate(text.splitlines(), 1)]
    return [p for p in prompts if p.user]


def _read_dataset(source: str) -> list[Prompt]:
    """A ``prompt`` column is used as is; anything else goes through format detection."""
    from engine.data.formats import detect, normalise
    from engine.data.load import read_table

    table = read_table(source)
    if "prompt" in table.columns:
        return [
            Prompt(str(row["prompt"]).strip(), _text_or_none(row.get("system")), n)
            for n, row in zip(table.row_numbers(), table.rows, strict=True)
            if str(row.get("prompt") or "").strip()
        ]
    detection = detect(table)
    conversations, _flagged = normalise(table, detection)
    prompts = []
    for conversation in conversations:
        system = next((m["content"] for m in conversation.messages if m["role"] == "system"), None)
        user = next((m["content"] for m in conversation.messages if m["role"] == "user"), "")
        if user.strip():
            prompts.append(Prompt(user.strip(), system, conversation.row))
    if not prompts:
        raise UserError(
            _("found no prompts in {source} ({format}: {evidence})").format(
                source=source, format=detection.format, evidence=detection.evidence
            ),
            hint=_("Give a text file with one prompt a line, or JSONL with a `prompt` field."),
        )
    return prompts


def _text_or_none(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


# --- the language the teacher is asked in --------------------------------------

# The plan's default system prompt, and its counterpart for each language the teacher is
# asked in. Not translated with the user's interface language: they follow the data.
SYSTEM_PROMPTS = {"en": "You are a helpful assistant.", "zh": "你是一个乐于助人的助手。"}
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # CJK ideographs: Chinese characters
_CJK = re.compile(f"[{_HAN}]")
_LATIN = re.compile(r"[A-Za-z]")
CJK_SHARE = 0.3  # of CJK characters among CJK and Latin letters: Chinese text with code in it
SAMPLED_TEXTS = 200


def language_of(texts: list[str]) -> str:
    """``zh`` when the texts (the first few hundred) are mostly Chinese, else ``en``."""
    sample = "".join(texts[:SAMPLED_TEXTS])
    cjk, latin = len(_CJK.findall(sample)), len(_LATIN.findall(sample))
    return "zh" if cjk and cjk / (cjk + latin) >= CJK_SHARE else "en"


def teacher_language(language: str, texts: list[str]) -> str:
    """The plan's ``teacher.language``, with ``auto`` decided by the prompts or the topic."""
    return language if language in SYSTEM_PROMPTS else language_of(texts)


def system_prompt(system: str, language: str) -> str:
    """The plan's own system prompt, or the default one in ``language`` (``en``/``zh``)."""
    return SYSTEM_PROMPTS[language] if system == SYSTEM_PROMPTS["en"] else system


# --- topic-driven questions ---------------------------------------------------

QUESTIONS_PER_REQUEST = 25


def question_request(
    topic: str, n: int, avoid: list[str], language: str = "en"
) -> list[dict[str, str]]:
    """The chat asking the teacher for ``n`` new questions that differ from ``avoid``."""
    if language == "zh":
        system = "你负责编写考试题和面试题。"
        lines = [
            f"请围绕“{topic}”写出 {n} 个各不相同的问题。",
            "覆盖不同的子主题、难度和题型（解释、比较、操作方法、原因、排错、举例）。",
            "每个问题都要能独立成立。不要回答这些问题。",
            "每行写一个问题，加上编号，不要写其他任何内容。",
        ]
        already = "下面这些问题已经有了，请写不同的问题："
    else:
        system = "You write exam and interview questions."
        lines = [
            f"Write {n} diverse questions about {topic}.",
            "Cover different subtopics, difficulty levels and kinds of question "
            "(explain, compare, how-to, why, troubleshoot, give an example).",
            "Each question must stand on its own. Do not answer them.",
            "Reply with one question per line, numbered, and nothing else.",
        ]
        already = "These exist already; write different ones:"
    if avoid:
        lines.append(already)
        lines += [f"- {q}" for q in avoid[-30:]]
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": "\n".join(lines)},
    ]


_NUMBERING = re.compile(r"^\s*(?:[-*\u2022]|\d+[.):、．）]|Q\d+[.):]?)\s*")


def parse_questions(text: str) -> list[str]:
    """One question a line, numbering and bullets stripped, headings and blanks dropped."""
    questions = []
    for line in text.splitlines():
        line = _NUMBERING.sub("", line).strip().strip("*").strip()
        # Three words, or four Chinese characters (Chinese has no spaces between words).
        long_enough = len(line.split()) >= 3 or len(_CJK.findall(line)) >= 4
        if long_enough and not line.endswith((":", "：")):
            questions.append(line)
    return questions


# --- near-duplicate filter ----------------------------------------------------

# A word is a run of letters or digits, except that each Chinese character counts as one:
# Chinese has no spaces, and a whole sentence as one word would hide near duplicates.
_WORD = re.compile(f"[{_HAN}]|[^\\W{_HAN}]+")
_BINS = 16  # one-permutation MinHash: 16 bins, banded in pairs


def _shingles(text: str) -> frozenset[str]:
    words = _WORD.findall(text.lower())
    if len(words) < 3:
        return frozenset([" ".join(words)])
    return frozenset(" ".join(words[i : i + 3]) for i in range(len(words) - 2))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _bands(shingles: frozenset[str]) -> list[tuple[int, int | None, int | None]]:
    """Locality-sensitive keys: texts sharing a key are candidates, checked exactly."""
    bins: list[int | None] = [None] * _BINS
    for h in map(zlib.crc32, map(str.encode, shingles)):
        j, v = h % _BINS, h // _BINS
        if bins[j] is None or v < bins[j]:
            bins[j] = v
    return [
        (k, bins[k], bins[k + 1])
        for k in range(0, _BINS, 2)
        if bins[k] is not None or bins[k + 1] is not None
    ]


def dedupe(prompts: list[Prompt], threshold: float) -> tuple[list[Prompt], Diversity]:
    """Keep the first of every group of prompts at least ``threshold`` similar.

    Similarity is the Jaccard index of word 3-shingles; candidates come from a
    one-permutation MinHash index, so the cost grows linearly with the prompts.
    Deterministic (CRC32, input order), so a resumed run keeps the same prompts.
    """
    kept: list[Prompt] = []
    kept_shingles: list[frozenset[str]] = []
    seen: set[tuple[str | None, str]] = set()
    buckets: dict[tuple[int, int | None, int | None], list[int]] = defaultdict(list)
    exact = near = 0
    for prompt in prompts:
        normal = (prompt.system, " ".join(prompt.user.lower().split()))
        if normal in seen:
            exact += 1
            continue
        seen.add(normal)
        shingles = _shingles(prompt.user)
        bands = _bands(shingles)
        if threshold > 0:
            candidates = {i for key in bands for i in buckets.get(key, ())}
            if any(jaccard(shingles, kept_shingles[i]) >= threshold for i in candidates):
                near += 1
                continue
        for key in bands:
            buckets[key].append(len(kept))
        kept.append(prompt)
        kept_shingles.append(shingles)
    return kept, Diversity(len(prompts), len(kept), exact, near, distinct_2(kept))


def distinct_2(prompts: list[Prompt]) -> float:
    """Unique word bigrams over all word bigrams: 1.0 when no two prompts share phrasing."""
    total = 0
    unique: set[tuple[str, str]] = set()
    for prompt in prompts:
        words = _WORD.findall(prompt.user.lower())
        pairs = list(zip(words, words[1:], strict=False))
        total += len(pairs)
        unique.update(pairs)
    return len(unique) / total if total else 1.0
