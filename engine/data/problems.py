"""Find what is wrong with normalised rows, say it plainly, and repair by dropping.

Repair never touches the source file: it returns the conversations worth
training on. Empty prompts, empty or missing answers and unreadable rows are
dropped (the student would learn nothing, or learn to say nothing); of exact
duplicates the first copy is kept. Rows longer than ``max_seq_length`` are the
renderer's to drop or truncate, since only the tokenizer can tell.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.data.types import Conversation, Problem
from engine.i18n import N_, _

ROWS_SHOWN = 5

# Report order, and what each kind means for the user.
_MESSAGES = {
    "malformed_line": N_(
        "{n} line(s) are not JSON objects and were skipped; fix or delete them in the file"
    ),
    "too_deep": N_(
        "{n} line(s) are nested too deep to read (hundreds of levels of [ and {{, which "
        "no conversation is) and were skipped; fix or delete them in the file"
    ),
    "malformed_row": N_(
        "{n} row(s) hold no readable conversation (not a list of turns, or a "
        "role other than system/user/assistant); they are dropped"
    ),
    "empty_prompt": N_(
        "{n} row(s) have an empty prompt; they are dropped, as there is nothing to answer"
    ),
    "empty_response": N_(
        "{n} row(s) have an empty answer; they are dropped, or the student "
        "would learn to say nothing"
    ),
    "missing_response": N_(
        "{n} row(s) have no assistant answer to learn from; they are dropped. "
        "Generate answers with the teacher, or map the answer column "
        "(--map response=COLUMN)"
    ),
    "teacher_flagged": N_(
        "{n} row(s) were flagged by the teacher (answer cut by max_tokens, "
        "empty, or a refusal: see meta.flags); they are dropped. Raise max_tokens and delete "
        "those lines to have them answered again"
    ),
    "duplicate": N_("{n} row(s) repeat an earlier row exactly; only the first copy is kept"),
    "too_long": N_("{n} row(s) are longer than max_seq_length"),
}
KINDS = tuple(_MESSAGES)


def find_problems(conversations: list[Conversation]) -> dict[str, list[int]]:
    """The 1-based rows of each content problem; a row may show up under several kinds."""
    found: dict[str, list[int]] = {
        "empty_prompt": [],
        "empty_response": [],
        "missing_response": [],
        "teacher_flagged": [],
        "duplicate": [],
    }
    seen: set[tuple[tuple[str, str], ...]] = set()
    for conversation in conversations:
        messages = conversation.messages
        prompts = [m["content"] for m in messages if m["role"] == "user"]
        answers = [m["content"] for m in messages if m["role"] == "assistant"]
        if not prompts or not all(prompts):
            found["empty_prompt"].append(conversation.row)
        if not answers:
            found["missing_response"].append(conversation.row)
        elif not all(answers):
            found["empty_response"].append(conversation.row)
        if conversation.flags:
            found["teacher_flagged"].append(conversation.row)
        key = tuple((m["role"], m["content"]) for m in messages)
        if key in seen:
            found["duplicate"].append(conversation.row)
        else:
            seen.add(key)
    return found


def describe(kind: str, rows: list[int], detail: str = "") -> Problem:
    """One :class:`Problem` with its count, the first few rows and a plain message."""
    message = _(_MESSAGES[kind]).format(n=len(rows))
    sentence = _("{problem}.").format(problem=message + detail)
    return Problem(kind, len(rows), rows[:ROWS_SHOWN], sentence)


def report(flagged: dict[str, list[int]], details: dict[str, str] | None = None) -> list[Problem]:
    """Problems in a fixed order, kinds with no rows left out."""
    details = details or {}
    return [
        describe(kind, flagged[kind], details.get(kind, "")) for kind in KINDS if flagged.get(kind)
    ]


def repair(conversations: list[Conversation], flagged: dict[str, list[int]]) -> list[Conversation]:
    """The conversations whose row is in none of ``flagged``, in source order."""
    dropped = {row for rows in flagged.values() for row in rows}
    return [c for c in conversations if c.row not in dropped]


@dataclass(frozen=True)
class Tally:
    """How many records a dataset holds, how many training can use, and why the rest cannot.

    ``records`` counts lines that could not be parsed too, since the user wrote
    them as rows. Repeats dropped as duplicates are not ``unusable``: keeping one
    copy is a choice (``dataset.drop_duplicates``), not a fault in the data.
    """

    records: int
    usable: int
    unusable: int
    problems: dict[str, int]  # kind -> rows, in report order

    @property
    def share(self) -> float:
        """The unusable part of the records, 0..1."""
        return self.unusable / self.records if self.records else 0.0

    def words(self) -> str:
        """One line, as the CLI, the run's log and the Train step all say it."""
        if self.unusable:
            text = _("{records:,} records, {usable:,} usable, {unusable:,} unusable ({share:.0%})")
        else:
            text = _("{records:,} records, {usable:,} usable")
        text = text.format(
            records=self.records, usable=self.usable, unusable=self.unusable, share=self.share
        )
        return f"{text}: {self.kinds()}" if self.problems else text

    def kinds(self) -> str:
        """Rows by problem kind, e.g. ``10 malformed_line, 2 duplicate``."""
        return ", ".join(f"{n:,} {kind}" for kind, n in self.problems.items())


def tally(records: int, usable: list[int], flagged: dict[str, list[int]]) -> Tally:
    """Count ``records`` against the rows that survive (``usable``) and the problems found."""
    kept = set(usable)
    faults = {row for kind, rows in flagged.items() if kind != "duplicate" for row in rows}
    repeats = set(flagged.get("duplicate", ())) - kept - faults
    counts = {kind: len(flagged[kind]) for kind in KINDS if flagged.get(kind)}
    return Tally(records, len(kept), records - len(kept) - len(repeats), counts)
