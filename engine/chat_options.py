"""What each chat prompt is answered with: one set of defaults and one check for every front end.

The Chat step, ``stillroom chat``, the chat child and ``stillroom eval`` all take
their answer budget from here, so the wizard and the command line never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Large enough that a chat answer is not cut at half a sentence (the notebook's 64-128
# was the most common complaint); an answer that reaches it is marked cut.
DEFAULT_MAX_NEW_TOKENS = 1024
MAX_BUDGET = 32_768  # beyond any student's context: a typo, not a wish


@dataclass(frozen=True)
class ChatOptions:
    """What each prompt is sent with; kept for the session, never written to the plan."""

    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS  # an answer that reaches it is marked cut
    system: str = ""  # none: the student saw its training data without one
    temperature: float = 0.0  # greedy, so the student and base answers are comparable

    def __post_init__(self) -> None:
        if not isinstance(self.max_new_tokens, int) or not 1 <= self.max_new_tokens <= MAX_BUDGET:
            raise ValueError(f"The answer budget must be a whole number from 1 to {MAX_BUDGET}.")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError("The temperature must be a number from 0 (greedy) to 2.")
        if not isinstance(self.system, str):
            raise ValueError("The system prompt must be text.")

    @classmethod
    def parse(cls, budget: str, system: str, temperature: str) -> ChatOptions:
        """The options as typed, or a ValueError saying what to type instead."""
        return cls(_number(budget, int, 0), system.strip(), _number(temperature, float, -1.0))

    @classmethod
    def from_request(cls, request: dict[str, Any]) -> ChatOptions:
        """A chat child's request line; absent or null keys take the defaults (0 stays 0)."""
        given = {key: request.get(key) for key in ("max_new_tokens", "system", "temperature")}
        defaults = cls()
        return cls(
            _number(_or(given["max_new_tokens"], defaults.max_new_tokens), int, 0),
            _or(given["system"], defaults.system),
            _number(_or(given["temperature"], defaults.temperature), float, -1.0),
        )

    def generation(self) -> dict[str, Any]:
        """Keywords for :meth:`engine.chat.Student.stream`."""
        return {"max_new_tokens": self.max_new_tokens, "system": self.system or None,
                "temperature": self.temperature}  # fmt: skip


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _number(value: Any, kind: type, invalid: float) -> Any:
    """``value`` as ``kind``, or ``invalid`` (which the range check then refuses)."""
    try:
        number = kind(str(value).strip()) if isinstance(value, str) else kind(value)
    except (TypeError, ValueError):
        return kind(invalid)
    if kind is int and isinstance(value, float) and value != number:
        return kind(invalid)
    return number
