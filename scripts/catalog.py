"""Keep the Chinese catalog in step with the source (needs Babel: the ``test`` extra).

    python scripts/catalog.py update    # extract _()/N_()/ngettext() strings, merge, compile
    python scripts/catalog.py todo      # the messages still without a translation
    python scripts/catalog.py apply F   # set translations from a JSON {"English": "中文"}
    python scripts/catalog.py compile   # .po -> .mo after editing translations by hand
    python scripts/catalog.py check     # what tests/test_catalog.py asserts, as a list

The .po file is written sorted by message, without line numbers, so edits on parallel
branches touch only their own entries and merge cleanly.
"""

from __future__ import annotations

import io
import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("engine", "tui")
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}
PO = ROOT / "engine" / "locale" / "zh_CN" / "LC_MESSAGES" / "stillroom.po"
MO = PO.with_suffix(".mo")
# {name} (str.format) and %s / %(name)s (argparse's own messages) must survive translation.
_PLACEHOLDER = re.compile(r"\{[^{}]*\}|%\([a-z_]+\)[a-z]|%[a-z]")
# A fixed header: a date that changed at every update would make every branch conflict.
_HEADER = {
    "locale": "zh_CN",
    "domain": "stillroom",
    "project": "Stillroom",
    "version": "0.1",
    "copyright_holder": "the Stillroom authors",
    "msgid_bugs_address": "",
    "last_translator": "Stillroom <stillroom@localhost>",
    "language_team": "Simplified Chinese",
    "creation_date": datetime(2026, 11, 30, tzinfo=timezone.utc),
    "revision_date": datetime(2026, 11, 30, tzinfo=timezone.utc),
    "header_comment": "# Simplified Chinese messages of Stillroom; terms: docs/glossary-zh.md.",
    "fuzzy": False,
}


def extracted() -> dict[str | tuple[str, str], list[str]]:
    """Every marked message in the source, with the files it appears in."""
    found: dict[str | tuple[str, str], list[str]] = {}
    for folder in SOURCES:
        for filename, _lineno, message, _comments, _context in extract_from_dir(
            ROOT / folder, method_map=[("**.py", "python")], keywords=KEYWORDS
        ):
            key = message if isinstance(message, str) else tuple(message)
            if key:
                found.setdefault(key, []).append(f"{folder}/{filename}")
    return found


def load() -> Catalog:
    """The Chinese catalog as it is on disk (an empty one before the first update)."""
    if not PO.is_file():
        return Catalog(**_HEADER)
    with PO.open("rb") as handle:
        return read_po(handle, locale="zh_CN", domain="stillroom")


def update() -> Catalog:
    """Add new messages (untranslated), drop ones no longer in the source, keep the rest."""
    old = load()
    new = Catalog(**_HEADER)
    for key, files in extracted().items():
        previous = old.get(key if isinstance(key, str) else key[0])
        string = previous.string if previous is not None else ("", "") if isinstance(key, tuple) else ""
        new.add(key, string, locations=[(name, None) for name in sorted(set(files))])
    save(new)
    return new


def apply(translations: dict[str, str | list[str]]) -> list[str]:
    """Set the translations given as {msgid: msgstr}; returns the msgids not in the catalog."""
    catalog, unknown = load(), []
    for msgid, string in translations.items():
        message = catalog.get(msgid)
        if message is None:
            unknown.append(msgid)
        else:
            message.string = string if isinstance(string, str) else tuple(string)
            message.flags.discard("fuzzy")
    save(catalog)
    return unknown


def save(catalog: Catalog) -> None:
    """Write the .po (sorted, no line numbers) and compile the .mo beside it."""
    PO.parent.mkdir(parents=True, exist_ok=True)
    with PO.open("wb") as handle:
        write_po(handle, catalog, sort_output=True, include_lineno=False, width=100)
    compile_mo(catalog)


def compile_mo(catalog: Catalog | None = None) -> None:
    """The binary catalog gettext reads at run time."""
    buffer = io.BytesIO()
    write_mo(buffer, catalog or load())
    MO.write_bytes(buffer.getvalue())


def _strings(value: str | tuple[str, ...] | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def problems() -> list[str]:
    """Untranslated, unused or stale entries, and placeholders that differ between languages."""
    catalog, source = load(), extracted()
    ids = {key if isinstance(key, str) else key[0] for key in source}
    out = []
    for key in source:
        msgid = key if isinstance(key, str) else key[0]
        if msgid not in catalog:
            out.append(f"not in the catalog (run `python scripts/catalog.py update`): {msgid!r}")
    for message in catalog:
        if not message.id:
            continue
        msgid = _strings(message.id)[0]
        if msgid not in ids:
            out.append(f"no longer in the source: {msgid!r}")
            continue
        if not all(_strings(message.string)) or message.fuzzy:
            out.append(f"no translation: {msgid!r}")
            continue
        wanted = sorted(_PLACEHOLDER.findall(msgid))
        for text in _strings(message.string):
            if sorted(_PLACEHOLDER.findall(text)) != wanted:
                out.append(f"placeholders differ: {msgid!r} -> {text!r}")
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    if not MO.is_file() or MO.read_bytes() != buffer.getvalue():
        out.append("the .mo is older than the .po: run `python scripts/catalog.py compile`")
    return out


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    if command == "update":
        catalog = update()
        todo = sum(1 for message in catalog if message.id and not all(_strings(message.string)))
        print(f"{len(catalog)} messages, {todo} without a translation: {PO.relative_to(ROOT)}")
    elif command == "apply" and len(argv) == 2:
        unknown = apply(json.loads(Path(argv[1]).read_text(encoding="utf-8")))
        for msgid in unknown:
            print(f"not in the catalog (run update first?): {msgid!r}")
        return 1 if unknown else 0
    elif command == "compile":
        compile_mo()
    elif command == "todo":
        for message in load():
            if message.id and not all(_strings(message.string)):
                print(repr(message.id))
    elif command == "check":
        found = problems()
        print("\n".join(found) or "the catalog is complete")
        return 1 if found else 0
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
