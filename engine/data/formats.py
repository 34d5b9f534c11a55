"""Tell what shape a table has, and turn every shape into chat messages.

Pure Python and fast: detection looks at column names together with a sample
of values (never the whole table), so a 50,000-row file is read once, by
:func:`normalise`. Names alone mislead (``input`` is a prompt in one dataset
and a context in another) and so do values alone (two text columns say nothing
of which is the answer), so each choice comes with the evidence in plain words.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.data.types import Conversation, Detection, Message, Table
from engine.errors import UserError
from engine.i18n import N_, _

ROLE_ALIASES = {
    "user": "user",
    "human": "user",
    "prompter": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "chatgpt": "assistant",
    "ai": "assistant",
    "system": "system",
}
# Mapping keys each format can use, and the ones it cannot do without.
FORMAT_KEYS = {
    "alpaca": ("instruction", "output", "input", "system", "reasoning"),
    "pair": ("prompt", "response", "system", "reasoning"),
    "sharegpt": ("conversations", "system", "reasoning"),
    "messages": ("conversations", "system", "reasoning"),
    "text": ("text",),
}
REQUIRED_KEYS = {
    "alpaca": ("instruction",),
    "pair": ("prompt",),
    "sharegpt": ("conversations",),
    "messages": ("conversations",),
    "conversations": ("conversations",),
    "text": ("text",),
}
MAP_KEYS = (
    "prompt",
    "response",
    "system",
    "instruction",
    "input",
    "output",
    "conversations",
    "text",
    "reasoning",
)
_KEY_ALIASES = {"messages": "conversations"}

# Column names, lower-cased with punctuation removed, that suggest each role.
_NAMES = {
    "conversations": (
        "conversations",
        "conversation",
        "messages",
        "chat",
        "dialog",
        "dialogue",
        "turns",
    ),
    "instruction": ("instruction", "instructions"),
    "input": ("input", "context", "inputs"),
    "output": ("output", "outputs", "response", "answer", "completion"),
    "prompt": (
        "prompt",
        "question",
        "query",
        "input",
        "user",
        "human",
        "problem",
        "request",
        "q",
        "instruction",
    ),
    "response": (
        "response",
        "answer",
        "completion",
        "output",
        "target",
        "solution",
        "reply",
        "assistant",
        "gpt",
        "chosen",
        "a",
    ),
    "system": ("system", "systemprompt", "systemmessage", "sys"),
    "text": ("text", "fulltext", "formatted", "rendered"),
    "reasoning": (
        "reasoning",
        "reasoningcontent",
        "thinking",
        "thoughts",
        "thought",
        "chainofthought",
        "cot",
        "rationale",
    ),
}
_LABELS = {  # translated where shown
    "alpaca": N_("Alpaca"),
    "pair": N_("prompt/response pairs"),
    "sharegpt": N_("ShareGPT"),
    "messages": N_("chat messages"),
    "text": N_("already-rendered text"),
}
_SAMPLE_ROWS = 256
_LETTER = re.compile(r"[^\W\d_]")
_TEMPLATE_MARKERS = (
    "<|im_start|>",
    "<|start_header_id|>",
    "[INST]",
    "### Instruction",
    "### Human",
    "### Response",
    "<start_of_turn>",
    "<|user|>",
    "\n\nHuman:",
)


@dataclass
class _Column:
    """What the sampled values of one column look like."""

    name: str
    kind: str  # turns | text | number | other | empty
    turn_keys: tuple[str, str] = ("role", "content")
    roles: list[str] = field(default_factory=list)
    rendered: bool = False  # values carry chat-template markers


# --------------------------------------------------------------------------- detection


def detect(table: Table, format: str = "auto", mapping: dict[str, str] | None = None) -> Detection:
    """Choose a format and column mapping, honouring the user's ``format`` and ``mapping``.

    A partial ``mapping`` (``prompt=question``) is completed from column names;
    a mapping that names a missing column, or that a format cannot use, is a
    :class:`UserError` listing what would work.
    """
    if format != "auto" and format not in FORMAT_KEYS:
        raise UserError(
            _("unknown format {format!r}").format(format=format),
            hint=_("use auto or one of {FORMAT_KEYS}").format(FORMAT_KEYS=", ".join(FORMAT_KEYS)),
        )
    profile = _profile(table)
    override = _check_override(table, mapping or {})
    fmt = _implied_format(override, format)
    if fmt == "auto":
        for candidate in ("conversations", "alpaca", "pair", "text"):
            found = _detect_as(candidate, profile, taken=set())
            if found:
                return found
        return Detection("unknown", {}, _unknown_evidence(profile))
    taken = set(override.values())
    found = _detect_as(fmt, profile, taken, override)
    if not found:
        missing = [k for k in REQUIRED_KEYS[fmt] if k not in override]
        needs = ",".join(f"{k}=COLUMN" for k in missing)
        raise UserError(
            _("cannot read {source} as {fmt}: no column found for {missing}").format(
                source=table.source, fmt=fmt, missing=", ".join(missing)
            ),
            hint=_("pass --map {needs}; the columns are {columns}").format(
                needs=needs, columns=", ".join(table.columns)
            ),
        )
    return found


def _check_override(table: Table, mapping: dict[str, str]) -> dict[str, str]:
    override = {_KEY_ALIASES.get(k, k): v for k, v in mapping.items()}
    unknown = [k for k in override if k not in MAP_KEYS]
    if unknown:
        raise UserError(
            _("unknown mapping key {unknown}").format(unknown=", ".join(unknown)),
            hint=_("use any of {MAP_KEYS}").format(MAP_KEYS=", ".join(MAP_KEYS)),
        )
    absent = [v for v in override.values() if v not in table.columns]
    if absent:
        raise UserError(
            _("no column named {absent} in {source}").format(
                absent=", ".join(absent), source=table.source
            ),
            hint=_("the columns are {columns}").format(columns=", ".join(table.columns)),
        )
    return override


def _implied_format(override: dict[str, str], format: str) -> str:
    """The format the user asked for, explicitly or through the keys they mapped."""
    keys = set(override) - {"system", "reasoning"}
    fits = [
        f
        for f in ("alpaca", "pair", "conversations", "text")
        if keys <= set(FORMAT_KEYS["sharegpt" if f == "conversations" else f])
    ]
    if format != "auto":
        group = "conversations" if format in ("sharegpt", "messages") else format
        if group not in fits:
            raise UserError(
                _("mapping keys {keys} do not fit format {format}").format(
                    keys=", ".join(sorted(keys)), format=format
                ),
                hint=_("{format} takes {FORMAT_KEYS}").format(
                    format=format, FORMAT_KEYS=", ".join(FORMAT_KEYS[format])
                ),
            )
        return format
    if not keys:
        return "auto"
    if not fits:
        raise UserError(
            _("mapping keys {keys} mix different formats").format(keys=", ".join(sorted(keys))),
            hint=_("map prompt/response, or instruction/input/output, or conversations, or text"),
        )
    return fits[0]


def _detect_as(
    fmt: str, profile: list[_Column], taken: set[str], override: dict[str, str] | None = None
) -> Detection | None:
    """Try one format: fill its keys from ``override`` first, then from names and values."""
    override = override or {}
    columns = {c.name: c for c in profile}
    free = [c for c in profile if c.name not in taken]
    source = "detected"
    if fmt in ("conversations", "sharegpt", "messages"):
        chosen = override.get("conversations") or _first(free, "conversations", kinds=("turns",))
        if not chosen:
            return None
        column = columns[chosen]
        fmt = _turns_format(column) if fmt == "conversations" else fmt
        mapping = {"conversations": chosen}
        role_key, content_key = column.turn_keys
        seen = ", ".join(column.roles) or _("none")
        evidence = _("{column}[].{role}/{content} -> user/assistant (roles seen: {seen})").format(
            column=chosen, role=role_key, content=content_key, seen=seen
        )
    elif fmt == "alpaca":
        mapping = _fill(("instruction", "output", "input"), free, override)
        if "instruction" not in mapping:
            return None
        evidence = (
            _("{instruction} (+ {input}) -> user, {answer}")
            if "input" in mapping
            else _("{instruction} -> user, {answer}")
        ).format(
            instruction=mapping["instruction"],
            input=mapping.get("input"),
            answer=_answer_words(mapping.get("output")),
        )
    elif fmt == "pair":
        mapping, how = _fill_pair(free, override)
        if "prompt" not in mapping:
            return None
        source = "guessed" if how == _guessed() else source
        evidence = _("{prompt} -> user, {answer}").format(
            prompt=mapping["prompt"], answer=_answer_words(mapping.get("response"))
        )
        evidence += how
    else:  # text
        chosen = (
            override.get("text")
            or _first(free, "text", kinds=("text",))
            or next((c.name for c in free if c.rendered), None)
        )
        if not chosen:
            return None
        mapping = {"text": chosen}
        evidence = _("{column} holds whole conversations in a chat template's layout").format(
            column=chosen
        )
    used = set(mapping.values())
    for extra in ("system", "reasoning"):
        if extra in FORMAT_KEYS[fmt] and extra not in mapping:
            name = override.get(extra) or _first(
                [c for c in free if c.name not in used], extra, kinds=("text", "empty")
            )
            if name:
                mapping[extra] = name
                evidence += (
                    _("; {column} -> system prompt")
                    if extra == "system"
                    else _("; {column} -> teacher reasoning")
                ).format(column=name)
    if override:
        given = ", ".join(f"{k}={v}" for k, v in override.items())
        evidence += _(" (you mapped {given})").format(given=given)
        source = "given" if set(mapping) <= set(override) else source
    said = _("read as {label}: {evidence}").format(label=_(_LABELS[fmt]), evidence=evidence)
    return Detection(fmt, mapping, said, source)


def _answer_words(column: str | None) -> str:
    if column:
        return f"{column} -> assistant"
    return _("no answer column, so every row still needs an answer (from the teacher)")


def _fill(keys: tuple[str, ...], free: list[_Column], override: dict[str, str]) -> dict[str, str]:
    mapping = {k: override[k] for k in keys if k in override}
    for key in keys:
        if key not in mapping:
            taken = set(mapping.values())
            # A name match is strong evidence: numbers are answers too, and an
            # all-empty column is still the column the user's data calls "input".
            candidates = [c for c in free if c.name not in taken]
            name = _first(candidates, key, kinds=("text", "number", "empty"))
            if name:
                mapping[key] = name
    return mapping


def _guessed() -> str:
    """What a pairing taken from the column order says (the caller marks it ``guessed``)."""
    return _(" (guessed from column order: check it, or pass --map prompt=...,response=...)")


def _fill_pair(free: list[_Column], override: dict[str, str]) -> tuple[dict[str, str], str]:
    """Prompt and response by name; one side missing is taken by elimination, none by order."""
    mapping = _fill(("prompt", "response"), free, override)
    texts = [c.name for c in free if c.kind == "text" and c.name not in mapping.values()]
    texts = [name for name in texts if _norm(name) not in _NAMES["system"] + _NAMES["reasoning"]]
    if len(mapping) == 2:
        return mapping, ""
    if len(mapping) == 1 and len(texts) == 1:
        missing = "response" if "prompt" in mapping else "prompt"
        mapping[missing] = texts[0]
        return mapping, _(" ({column} is the only other text column)").format(column=texts[0])
    if not mapping and len(texts) == 2:
        return {"prompt": texts[0], "response": texts[1]}, _guessed()
    if "response" in mapping and "prompt" not in mapping:
        return {}, ""
    return mapping, ""


def _first(columns: list[_Column], key: str, kinds: tuple[str, ...]) -> str | None:
    """The column whose name best matches ``key`` (earlier alias wins) and whose values fit."""
    ranked = []
    for column in columns:
        if column.kind not in kinds:
            continue
        name = _norm(column.name)
        if name in _NAMES[key]:
            ranked.append((_NAMES[key].index(name), column.name))
        elif key == "conversations":
            ranked.append((len(_NAMES[key]), column.name))  # any column of turns will do
    return min(ranked)[1] if ranked else None


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _turns_format(column: _Column) -> str:
    if column.turn_keys[0] == "from" or _norm(column.name).startswith("conversation"):
        return "sharegpt"
    return "messages"


def _unknown_evidence(profile: list[_Column]) -> str:
    described = ", ".join(f"{c.name} ({c.kind})" for c in profile) or _("none")
    return _(
        "no column holds chat turns, and no prompt and answer columns could be told apart; "
        "columns: {columns}. Pass --map prompt=COLUMN,response=COLUMN"
    ).format(columns=described)


# --------------------------------------------------------------------------- profiling


def column_kinds(table: Table) -> dict[str, str]:
    """Each column's kind as sampled: turns, text, number, other or empty."""
    return {column.name: column.kind for column in _profile(table)}


def _profile(table: Table) -> list[_Column]:
    rows = _sample(table.rows)
    return [_profile_column(name, [row.get(name) for row in rows]) for name in table.columns]


def _sample(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Up to ``_SAMPLE_ROWS`` rows spread over the whole table, first rows included."""
    if len(rows) <= _SAMPLE_ROWS:
        return rows
    step = len(rows) / _SAMPLE_ROWS
    return [rows[int(i * step)] for i in range(_SAMPLE_ROWS)]


def _profile_column(name: str, values: list[Any]) -> _Column:
    votes: dict[str, int] = {}
    turn_keys: dict[tuple[str, str], int] = {}
    roles: dict[str, None] = {}
    rendered = False
    for value in values:
        turns = _as_turns(value)
        if turns is not None:
            kind = "turns"
            for turn in turns[:8]:
                keys = ("from", "value") if "from" in turn else ("role", "content")
                turn_keys[keys] = turn_keys.get(keys, 0) + 1
                roles.setdefault(str(turn.get(keys[0])), None)
        elif isinstance(value, str):
            if not value.strip():
                continue
            kind = "text" if _LETTER.search(value) else "number"
            rendered = rendered or any(marker in value for marker in _TEMPLATE_MARKERS)
        elif value is None:
            continue
        elif isinstance(value, (int, float)):
            kind = "number"
        else:
            kind = "other"
        votes[kind] = votes.get(kind, 0) + 1
    kind = max(votes, key=votes.__getitem__) if votes else "empty"
    keys = max(turn_keys, key=turn_keys.__getitem__) if turn_keys else ("role", "content")
    return _Column(name, kind, keys, list(roles), rendered and kind == "text")


def _as_turns(value: Any) -> list[dict[str, Any]] | None:
    """A list of role/content (or from/value) dicts, also when stored as a JSON string (CSV)."""
    if isinstance(value, str) and value.startswith("["):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError):  # not turns; nesting too deep to be any
            return None
    if isinstance(value, list) and value and all(isinstance(t, dict) for t in value):
        if all(("role" in t or "from" in t) for t in value):
            return value
    return None


# --------------------------------------------------------------------------- normalising


def normalise(table: Table, detection: Detection) -> tuple[list[Conversation], list[int]]:
    """Every readable row as a :class:`Conversation`; also the 1-based rows that are unreadable.

    Unreadable means the value has the wrong shape for the format (a turn list
    that is not a list, a role that is not system/user/assistant or an alias,
    rendered text with no recognisable turns). Contents are stripped of
    surrounding whitespace; empty ones are kept for the problem report to find.
    """
    if detection.format == "unknown":
        raise UserError(
            _("cannot read {source}: the format is unknown").format(source=table.source),
            hint=_("pass --map prompt=COLUMN,response=COLUMN (or another format's keys)"),
        )
    convert = _converter(detection)
    mapping = detection.mapping
    system_col, reasoning_col = mapping.get("system"), mapping.get("reasoning")
    conversations: list[Conversation] = []
    unreadable: list[int] = []
    for number, row in zip(table.row_numbers(), table.rows, strict=True):
        messages = convert(row)
        if messages is None:
            unreadable.append(number)
            continue
        if (
            system_col
            and (system := _text(row.get(system_col)))
            and (not messages or messages[0]["role"] != "system")
        ):
            messages.insert(0, {"role": "system", "content": system})
        reasoning = _text(row.get(reasoning_col)) if reasoning_col else None
        conversations.append(
            Conversation(messages, number, reasoning or None, _flags(row), _held_out(row))
        )
    return conversations, unreadable


def _held_out(row: dict[str, Any]) -> bool:
    """Whether a teacher output row is marked ``meta.heldout`` (kept for eval)."""
    meta = row.get("meta")
    return isinstance(meta, dict) and meta.get("heldout") is True


def _flags(row: dict[str, Any]) -> tuple[str, ...]:
    """Quality flags a teacher output row carries in ``meta.flags``."""
    meta = row.get("meta")
    flags = meta.get("flags") if isinstance(meta, dict) else None
    return tuple(str(f) for f in flags) if isinstance(flags, list) else ()


def _converter(detection: Detection) -> Callable[[dict[str, Any]], list[Message] | None]:
    mapping = detection.mapping
    if detection.format == "alpaca":
        instruction, extra, output = (
            mapping["instruction"],
            mapping.get("input"),
            mapping.get("output"),
        )

        def alpaca(row: dict[str, Any]) -> list[Message]:
            prompt = _text(row.get(instruction))
            context = _text(row.get(extra)) if extra else ""
            if context:
                prompt = f"{prompt}\n\n{context}" if prompt else context
            return _single_turn(prompt, row.get(output) if output else None)

        return alpaca
    if detection.format == "pair":
        prompt_col, response_col = mapping["prompt"], mapping.get("response")

        def pair(row: dict[str, Any]) -> list[Message]:
            answer = row.get(response_col) if response_col else None
            return _single_turn(_text(row.get(prompt_col)), answer)

        return pair
    if detection.format == "text":
        column = mapping["text"]
        return lambda row: split_rendered(_text(row.get(column)))
    column = mapping["conversations"]
    return lambda row: _from_turns(row.get(column))


def _single_turn(prompt: str, answer: Any) -> list[Message]:
    messages = [{"role": "user", "content": prompt}]
    if answer is not None:
        messages.append({"role": "assistant", "content": _text(answer)})
    return messages


def _from_turns(value: Any) -> list[Message] | None:
    turns = _as_turns(value)
    if turns is None:
        return None
    messages = []
    for turn in turns:
        role = ROLE_ALIASES.get(str(turn.get("role", turn.get("from", ""))).strip().lower())
        if role is None:
            return None
        content = turn.get("content", turn.get("value"))
        messages.append({"role": role, "content": _text(content)})
    return messages


def _text(value: Any) -> str:
    """Cell text: ``None`` is empty, numbers become text, content-part lists are joined."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):  # OpenAI content parts: [{"type": "text", "text": ...}]
        return "\n".join(_text(part.get("text")) for part in value if isinstance(part, dict))
    return str(value).strip()


# Role headers of common rendered layouts: ChatML, Llama 3, "### Instruction:", "### Human:"
# and "Human:" at the start of a line.
_CHATML = re.compile(r"<\|im_start\|>(\w+)\n(.*?)(?:<\|im_end\|>|$)", re.S)
_LLAMA3 = re.compile(
    r"<\|start_header_id\|>(\w+)<\|end_header_id\|>\n*(.*?)(?:<\|eot_id\|>|$)", re.S
)
_HEADERS = re.compile(
    r"(?:###[ \t]*|^[ \t]*)(Instruction|Input|Response|Human|User|Assistant|System)[ \t]*:",
    re.I | re.M,
)
_HEADER_ROLES = {
    "instruction": "user",
    "input": "user",
    "human": "user",
    "user": "user",
    "response": "assistant",
    "assistant": "assistant",
    "system": "system",
}


def split_rendered(text: str) -> list[Message] | None:
    """Split already-rendered text back into turns, or ``None`` when no layout is recognised.

    Text before the first header (Alpaca's "Below is an instruction...") becomes
    the system prompt; consecutive turns of one role (Instruction then Input)
    are joined.
    """
    for pattern in (_CHATML, _LLAMA3):
        found = [(ROLE_ALIASES.get(r.lower()), c.strip()) for r, c in pattern.findall(text)]
        if found:
            return _merge(found)
    heads = list(_HEADERS.finditer(text))
    if not heads:
        return None
    found = []
    preamble = text[: heads[0].start()].strip()
    if preamble:
        found.append(("system", preamble))
    for head, nxt in zip(heads, [*heads[1:], None], strict=True):
        body = text[head.end() : nxt.start() if nxt else len(text)].strip()
        found.append((_HEADER_ROLES[head.group(1).lower()], body))
    return _merge(found)


def _merge(turns: list[tuple[str | None, str]]) -> list[Message] | None:
    messages: list[Message] = []
    for role, content in turns:
        if role is None:
            return None
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] += "\n\n" + content
        else:
            messages.append({"role": role, "content": content})
    return messages
