"""The user's own settings, kept across sessions: today only the wizard's language.

They live in ``$XDG_CONFIG_HOME/stillroom/settings.toml`` (``~/.config/...`` by default),
never in a plan file: a plan is shared between people and machines, a language is not.
An unreadable or damaged file reads as no settings; it is never a reason to stop.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from engine.fileio import atomic_write_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def settings_path() -> Path:
    """Where the settings file lives for this user."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "stillroom" / "settings.toml"


def load_settings() -> dict[str, Any]:
    """The saved settings, or an empty dict when there are none or they cannot be read."""
    try:
        return tomllib.loads(settings_path().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def remember(key: str, value: str) -> bool:
    """Save one string setting; False (and nothing lost) when the file cannot be written."""
    import tomli_w

    try:
        atomic_write_text(settings_path(), tomli_w.dumps({**load_settings(), key: value}))
    except OSError:
        return False
    return True
