"""Flags for answers that should not be mixed silently into a textbook.

A flagged answer is still written (it was paid for) with its flags in ``meta``,
and counted, so the user sees how many were cut, empty or refused and can drop
or regenerate them.
"""

from __future__ import annotations

import re

LENGTH = "length"  # stopped by max_tokens: the answer ends mid-sentence
EMPTY = "empty"  # no answer text (often: all the budget went to reasoning)
REFUSAL = "refusal"  # the teacher declined instead of answering

FLAGS = (LENGTH, EMPTY, REFUSAL)

# Openings of the stock refusals; matched against the first sentence only, so
# an answer that merely mentions "I can't" later on is not flagged.
_REFUSALS = re.compile(
    r"^(?:i'?m sorry,? but |sorry,? but |unfortunately,? )?"
    r"(?:i|as an ai(?: language model)?,? i) ?(?:can(?:no|')t|can not|am unable to|'m unable to|"
    r"won'?t|am not able to|'m not able to|must decline to)"
    r" (?:help|assist|provide|comply|fulfil|fulfill|answer|do that|create|write|support)"
    r"|^(?:抱歉|对不起)[，,]?\s*我(?:无法|不能)",
    re.IGNORECASE,
)


def flags(answer: str, finish_reason: str | None) -> list[str]:
    """The quality flags of one answer, in :data:`FLAGS` order."""
    found = []
    if finish_reason == "length":
        found.append(LENGTH)
    text = answer.strip().replace("\u2019", "'")
    if not text:
        found.append(EMPTY)
    elif _REFUSALS.search(text[:200]):
        found.append(REFUSAL)
    return found
