"""One ``reasoning`` field, however the teacher returned its chain of thought.

Teachers hand back their thinking three ways: a separate ``reasoning_content``
field (DeepSeek's thinking mode, vLLM's reasoning parsers), an inline
``<think>...</think>`` block before the answer, or - when the server's chat
template already opened the tag in the prompt - just the closing tag. All three
become ``(answer, reasoning)``; whether the student trains on the reasoning is
decided when the conversation is rendered, not here.
"""

from __future__ import annotations

import re
from typing import Any

_TAGS = ("think", "thinking")
_OPEN = re.compile(r"^\s*<(think|thinking)>", re.IGNORECASE)


def split_reasoning(
    content: str | None, reasoning_content: str | None = None
) -> tuple[str, str | None]:
    """Return ``(answer, reasoning)``; reasoning is ``None`` when there was none."""
    text = content or ""
    parts: list[str] = []
    if reasoning_content and reasoning_content.strip():
        parts.append(reasoning_content.strip())
    opened = _OPEN.match(text)
    if opened:
        text = text[opened.end() :]
    for tag in _TAGS:
        close = re.search(rf"</{tag}>", text, re.IGNORECASE)
        if close:
            parts.append(text[: close.start()].strip())
            text = text[close.end() :]
            break
    else:
        if opened:  # cut before the thinking ended: all of it is reasoning
            parts.append(text.strip())
            text = ""
    reasoning = "\n\n".join(p for p in parts if p)
    return text.strip(), reasoning or None


def assistant_text(answer: str, reasoning: str | None, *, with_reasoning: bool) -> str:
    """The assistant turn the student learns: the answer, or ``<think>`` + answer."""
    if with_reasoning and reasoning:
        return f"<think>\n{reasoning}\n</think>\n\n{answer}"
    return answer


def training_messages(record: dict[str, Any], *, with_reasoning: bool) -> list[dict[str, str]]:
    """A generated record's messages with the plan's reasoning choice applied."""
    messages = [dict(m) for m in record["messages"]]
    if with_reasoning and record.get("reasoning") and messages[-1]["role"] == "assistant":
        messages[-1]["content"] = assistant_text(
            messages[-1]["content"], record["reasoning"], with_reasoning=True
        )
    return messages
