"""Spotting an API key pasted where a name, a URL or a model id belongs.

A key typed into a plan would be copied into every run folder, shown in error
messages and sent in logs; one typed into ``model`` would even go to the
endpoint. Plan validation and the command line both ask this module, so they
agree on what looks like a key, and both show one only masked (:func:`masked`).

Two signs, either enough: a provider's known prefix followed by a long random
tail (``sk-``, ``gsk_``, ``hf_``...), or a long random run of letters and digits
with no word structure. Model ids such as ``deepseek-v4-flash`` or
``Qwen/Qwen2.5-72B-Instruct`` split into short words and do not match. Stdlib only.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# Longest first, so the most specific prefix names the key.
PREFIXES = (
    "github_pat_",
    "sk-proj-",
    "sk-ant-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "nvapi-",
    "glpat-",
    "pplx-",
    "gsk_",
    "xai-",
    "ghp_",
    "gho_",
    "ghs_",
    "sk-",
    "hf_",
    "r8_",
    "AIza",
    "AKIA",
    "ASIA",
)
MIN_TAIL = 16  # characters after a prefix: shorter is a name like `hf_token`, not a key
RANDOM_RUN = 32  # a run of letters and digits this long with a digit in it is never a word
SHORT_RANDOM_RUN = 20  # from here, a run that switches letters and digits often enough
# Names under which any string is a credential (not `max_tokens` or `stop_token`).
CREDENTIAL_NAMES = re.compile(
    r"^(key|token|auth|bearer)$|api[_-]?key|secret|password|authorization|(access|auth)[_-]?token",
    re.I,
)

_TOKEN = re.compile(r"[A-Za-z0-9_\-]+")
_RUN = re.compile(r"[A-Za-z0-9]+")


def masked(value: str) -> str:
    """How a key may be shown: its first four characters and its length."""
    return f"{value[:4]}… ({len(value)} characters)"


def shown(value: Any) -> str:
    """A rejected value as an error message may show it: :func:`masked` if it looks like a key."""
    if isinstance(value, str) and key_in(value):
        return masked(value)
    return repr(value)


def _prefixed(token: str) -> bool:
    """A known prefix followed by a random tail (not words: ``hf_exported_prompts_2024``)."""
    for prefix in PREFIXES:
        if token.startswith(prefix):
            tail = token[len(prefix) :]
            return len(tail) >= MIN_TAIL and any(map(_scrambled, _RUN.findall(tail)))
    return False


def _scrambled(run: str) -> bool:
    """Twelve or more letters and digits mixed as no word is: digits in it, or a case mix
    nearer half and half than CamelCase words get."""
    if len(run) < 12:
        return False
    letters = [c for c in run if c.isalpha()]
    upper = sum(c.isupper() for c in letters) / len(letters) if letters else 0.0
    return any(c.isdigit() for c in run) or 0.3 <= upper <= 0.7


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _random_run(run: str) -> bool:
    """A run of letters and digits that no model id, word or version number makes."""
    digits = sum(c.isdigit() for c in run)
    if len(run) >= RANDOM_RUN:
        return 0 < digits < len(run)
    if len(run) < SHORT_RANDOM_RUN or digits < 3 or digits == len(run):
        return False
    switches = sum(a.isdigit() != b.isdigit() for a, b in zip(run, run[1:], strict=False))
    return switches >= 6 and _entropy(run) >= 3.5


def key_in(text: str, *, random_runs: bool = True) -> str | None:
    """The first thing in ``text`` that looks like an API key, or ``None``.

    ``random_runs=False`` checks known prefixes only, for text where long hex
    runs are normal (file paths through a cache, URL paths with account ids).
    """
    for token in _TOKEN.findall(text):
        if _prefixed(token):
            return token
        if random_runs and any(_random_run(run) for run in _RUN.findall(token)):
            return token
    return None


def key_in_url(url: str) -> str | None:
    """A key in a URL: anywhere by its prefix; in a password or query value by its look too."""
    try:
        parts = urlsplit(url)
        hidden = [parts.password or "", parts.username or "", parts.fragment]
        hidden += [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
    except ValueError:
        return key_in(url)
    return key_in(url, random_runs=False) or next(
        (found for text in hidden if (found := key_in(text))), None
    )


def key_in_data(value: Any) -> str | None:
    """A key anywhere in nested data (``extra_body``), also any value under a credential name."""
    for name, item in _walk(value, ""):
        if not isinstance(item, str):
            continue
        if CREDENTIAL_NAMES.search(name) and len(item) >= 8:
            return item
        if found := key_in(item):
            return found
    return None


PATH_SETTINGS = ("prompts", "output")
NAME_SETTINGS = ("model", "api_key_env")
# Prefixes no model id or variable name starts with (unlike `hf_token`, `pplx-7b-online`,
# `ASIA_API_KEY`), so a key is caught from its first characters on.
NEVER_A_NAME = tuple(
    p for p in PREFIXES if p not in ("hf_", "pplx-", "r8_", "AIza", "AKIA", "ASIA")
)


def key_in_setting(name: str, value: Any) -> str | None:
    """A key in one teacher setting, checked the way that setting's kind of value allows."""
    if name == "base_url" and isinstance(value, str):
        return key_in_url(value)
    if name in PATH_SETTINGS and isinstance(value, str):
        return key_in(value, random_runs=False)
    if isinstance(value, str) and name in NAME_SETTINGS and value.startswith(NEVER_A_NAME):
        return value  # even half typed: the wizard saves every valid keystroke
    if name == "api_key_env" and isinstance(value, str):  # no variable name looks like `hf_x-y`
        if value.startswith(PREFIXES) and not value.isidentifier():
            return value
    return key_in_data(value)


def _walk(value: Any, name: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield "", str(key)
            yield from _walk(item, str(key))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk(item, name)
    else:
        yield name, value
