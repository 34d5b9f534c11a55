"""The language Stillroom speaks: English, or Simplified Chinese from gettext catalogs.

Every sentence a user reads goes through ``_("... {name} ...")`` and is formatted after
translation, so a translator can reorder the placeholders. Module-level constants are
marked with ``N_`` (extraction only) and translated where they are shown with ``_``.

The language is chosen once per process: ``--lang``, else ``$STILLROOM_LANG``, else the
user's remembered choice (``engine.settings``), else the locale (``LC_ALL``,
``LC_MESSAGES``, ``LANG`` starting ``zh``), else English. ``use_language`` exports the
choice as ``$STILLROOM_LANG``, which this module reads at import, so the engine children a
front end starts speak it too.
Plan files stay language-neutral.
"""

from __future__ import annotations

import gettext
import os
from collections.abc import Mapping
from pathlib import Path

DOMAIN = "stillroom"
LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = {"en": "English", "zh": "简体中文"}
# The catalog folder of each language that has one; English is the source text.
_CATALOG = {"zh": "zh_CN"}

_translation: gettext.NullTranslations = gettext.NullTranslations()
_language = "en"


def _(message: str) -> str:
    """``message`` in the current language (itself when it has no translation)."""
    return _translation.gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form of a counted sentence for ``n`` in the current language."""
    return _translation.ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark ``message`` for the catalog without translating it yet (module constants)."""
    return message


def normalise(value: str | None) -> str | None:
    """``zh``, ``zh_CN.UTF-8``, ``zh-Hans`` -> ``zh``; ``en_US`` -> ``en``; others -> None."""
    if not value:
        return None
    head = value.strip().lower().replace("-", "_").split(".")[0].split("_")[0]
    return head if head in LANGUAGES else None


def choose_language(
    flag: str | None = None,
    environ: Mapping[str, str] | None = None,
    remembered: str | None = None,
) -> str:
    """The language by precedence: flag, ``$STILLROOM_LANG``, remembered, locale, English."""
    env = os.environ if environ is None else environ
    for candidate in (flag, env.get("STILLROOM_LANG"), remembered):
        if lang := normalise(candidate):
            return lang
    for variable in ("LC_ALL", "LC_MESSAGES", "LANG"):
        if value := env.get(variable):  # the first one set decides, as in POSIX
            return "zh" if normalise(value) == "zh" else "en"
    return "en"


def use_language(lang: str) -> None:
    """Speak ``lang`` from now on in this process and in the children it starts."""
    global _translation, _language
    lang = normalise(lang) or "en"
    if lang in _CATALOG:
        _translation = gettext.translation(
            DOMAIN, LOCALE_DIR, languages=[_CATALOG[lang]], fallback=True
        )
    else:
        _translation = gettext.NullTranslations()
    _language = lang
    os.environ["STILLROOM_LANG"] = lang
    # argparse translates its own words ("usage:", "options", its errors) through the
    # process-wide domain, which reads $LANGUAGE: point both at our catalog.
    gettext.bindtextdomain(DOMAIN, LOCALE_DIR)
    gettext.textdomain(DOMAIN)
    os.environ["LANGUAGE"] = _CATALOG.get(lang, "en")


def current_language() -> str:
    """``en`` or ``zh``: what ``_`` translates to now."""
    return _language


# An engine child, or any process started with ``$STILLROOM_LANG``, speaks it from import on.
if normalise(os.environ.get("STILLROOM_LANG")) == "zh":
    use_language("zh")
