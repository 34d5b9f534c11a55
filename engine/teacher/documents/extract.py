"""Documents in, sections of plain text with their heading paths out.

Each reader keeps the structure its format carries: Markdown and HTML headings
(HTML goes through markdownify first), DOCX heading styles (python-docx), and
for PDF the outline (bookmarks) plus page numbers (pypdf). Every section knows
its path, document title > section > subsection, so a chunk cut from it still
says where it came from. Files that cannot be read are returned as
:class:`Skipped` with the reason, never silently dropped; a PDF whose pages are
only images (a scan) is reported as such rather than read as an empty document.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from engine.i18n import _
from engine.teacher.client import estimate_tokens

SUFFIXES = (".txt", ".md", ".pdf", ".docx", ".html")
ALIASES = {".text": ".txt", ".markdown": ".md", ".htm": ".html"}
MIN_TOKENS = 8  # about a short sentence: a teacher asked about one word can only invent


@dataclass(frozen=True)
class Section:
    """A run of text under one heading path; ``page`` is 1-based (PDF only)."""

    path: tuple[str, ...]
    text: str
    page: int | None = None


@dataclass
class Document:
    """One readable file: its title, its sections in reading order, its page count.

    ``image_pages``: pages of a PDF that are images only (scanned), so their text is missing.
    """

    file: str
    title: str
    sections: list[Section] = field(default_factory=list)
    pages: int | None = None
    image_pages: list[int] = field(default_factory=list)  # PDF pages with images and no text


@dataclass(frozen=True)
class Skipped:
    """A file that gives no text, and why in words a user can act on."""

    file: str
    reason: str
    scanned: bool = False


def find_files(paths: Iterable[str | Path], exclude: Iterable[Path] = ()) -> list[Path]:
    """Files under ``paths`` (folders recursively, hidden ones left out), sorted, each once.

    Raises ``UserError`` for a path that does not exist, so a typo is not read as
    an empty folder.
    """
    from engine.errors import UserError

    excluded = {p.resolve() for p in exclude}
    found: dict[Path, Path] = {}
    for given in paths:
        root = Path(given)
        if not root.exists():
            raise UserError(
                _("{path} does not exist").format(path=given),
                hint=_("Give files or folders of documents ({kinds}).").format(kinds=_KINDS),
            )
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            hidden = any(part.startswith(".") for part in path.relative_to(root).parts)
            if not hidden and path.resolve() not in excluded:
                found.setdefault(path.resolve(), path)
    return list(found.values())


def read(path: Path) -> Document | Skipped:
    """One file as a :class:`Document`, or :class:`Skipped` saying why it gives no text."""
    suffix = ALIASES.get(path.suffix.lower(), path.suffix.lower())
    reader = _READERS.get(suffix)
    if reader is None:
        shown = suffix or _("no extension")
        reason = _("not a document type read here ({kind}; reads {kinds})")
        return Skipped(str(path), reason.format(kind=shown, kinds=_KINDS))
    try:
        result = reader(path)
    except UnicodeDecodeError:
        return Skipped(str(path), _("not UTF-8 text; save it as UTF-8"))
    except Exception as error:  # noqa: BLE001 - a broken file is skipped with the library's reason
        reason = _("cannot be read as {kind} ({error})")
        return Skipped(str(path), reason.format(kind=suffix[1:].upper(), error=error))
    if isinstance(result, Document) and not any(s.text.strip() for s in result.sections):
        return Skipped(str(path), _("has no text"))
    if isinstance(result, Document):
        tokens = estimate_tokens(" ".join(s.text for s in result.sections))
        if tokens < MIN_TOKENS:
            reason = _(
                "has too little text to ask questions about (~{tokens} tokens; give it a "
                "sentence or more)"
            )
            return Skipped(str(path), reason.format(tokens=tokens))
    return result


_KINDS = " ".join(SUFFIXES)


def _title(path: Path) -> str:
    return path.stem.replace("_", " ").strip() or path.name


# --- text and Markdown (HTML becomes Markdown first) -------------------------------

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _read_text(path: Path) -> Document:
    text = path.read_text(encoding="utf-8-sig")
    title = _title(path)
    return Document(str(path), title, [Section((title,), text.strip())])


def _read_markdown(path: Path) -> Document:
    return markdown_document(str(path), path.read_text(encoding="utf-8-sig"), _title(path))


def markdown_document(file: str, text: str, fallback_title: str) -> Document:
    """Split Markdown at its ATX headings (``#`` lines outside code fences)."""
    stack: list[tuple[int, str]] = []
    sections: list[Section] = []
    lines: list[str] = []
    first_h1 = next(
        (m[2] for line in text.splitlines() if (m := _HEADING.match(line)) and m[1] == "#"), None
    )
    title = first_h1 or fallback_title

    def path() -> tuple[str, ...]:
        names = tuple(name for _level, name in stack)
        return names if stack and stack[0][0] == 1 else (title, *names)

    def close() -> None:
        body = "\n".join(lines).strip()
        if body:
            sections.append(Section(path(), body))
        lines.clear()

    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        heading = None if fenced else _HEADING.match(line)
        if heading is None:
            lines.append(line)
            continue
        close()
        level = len(heading[1])
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, _plain(heading[2])))
    close()
    return Document(file, title, sections)


def _plain(heading: str) -> str:
    """A heading without its Markdown emphasis and links."""
    heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    return re.sub(r"[*_`]+", "", heading).strip()


def _read_html(path: Path) -> Document:
    from bs4 import BeautifulSoup
    from markdownify import MarkdownConverter

    soup = BeautifulSoup(path.read_bytes(), "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(["head", "script", "style", "noscript", "nav", "header", "footer", "form"]):
        tag.decompose()
    text = MarkdownConverter(heading_style="ATX", strip=["img"]).convert_soup(soup)
    return markdown_document(str(path), text, title or _title(path))


# --- DOCX -----------------------------------------------------------------------


def _read_docx(path: Path) -> Document:
    import docx
    from docx.table import Table

    document = docx.Document(str(path))
    title = (document.core_properties.title or "").strip()
    stack: list[tuple[int, str]] = []
    sections: list[Section] = []
    lines: list[str] = []
    fallback = _title(path)

    def close() -> None:
        body = "\n".join(lines).strip()
        if body:
            names = tuple(name for _level, name in stack)
            sections.append(Section((title or fallback, *names), body))
        lines.clear()

    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                lines.append(" | ".join(cell.text.strip() for cell in row.cells))
            continue
        text = block.text.strip()
        style = (block.style.name if block.style is not None else "") or ""
        if style == "Title" and text:
            close()
            title, stack = text, []
        elif (level := _heading_level(style)) and text:
            close()
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, text))
        elif text:
            lines.append(text)
    close()
    return Document(str(path), title or fallback, sections)


def _heading_level(style: str) -> int:
    match = re.fullmatch(r"Heading (\d)", style)
    return int(match[1]) if match else 0


# --- PDF ------------------------------------------------------------------------


def _read_pdf(path: Path) -> Document | Skipped:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    if reader.is_encrypted and not reader.decrypt(""):
        return Skipped(str(path), _("is encrypted; save an unprotected copy"))
    title = str((reader.metadata or {}).get("/Title") or "").strip() or _title(path)
    texts = [page.extract_text() or "" for page in reader.pages]
    image_only = [
        n
        for n, (page, text) in enumerate(zip(reader.pages, texts, strict=True), 1)
        if not text.strip() and _has_images(page)
    ]
    if not any(t.strip() for t in texts):
        if image_only:
            reason = _(
                "is a scanned PDF: its {pages} page(s) are images with no text layer; run OCR "
                "on it first (for example `ocrmypdf scan.pdf text.pdf`), then read that file"
            )
            return Skipped(str(path), reason.format(pages=len(reader.pages)), scanned=True)
        return Skipped(str(path), _("has no text"))
    marks = _outline(reader)
    sections: list[Section] = []
    current: tuple[str, ...] = (title,)
    for number, text in enumerate(texts, 1):
        cursor = 0
        for names in marks.get(number, []):
            found = text.find(names[-1], cursor)
            if found > cursor and text[cursor:found].strip():
                sections.append(Section(current, text[cursor:found].strip(), number))
            if found >= 0:
                cursor = found + len(names[-1])
            current = (title, *names)
        if text[cursor:].strip():
            sections.append(Section(current, text[cursor:].strip(), number))
    return Document(str(path), title, sections, pages=len(reader.pages), image_pages=image_only)


def _has_images(page: object) -> bool:
    try:
        return bool(page.images)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - an unreadable image still means "not text"
        return True


def _outline(reader: object) -> dict[int, list[tuple[str, ...]]]:
    """Bookmarks by 1-based page: each the heading path of titles down to it."""
    marks: dict[int, list[tuple[str, ...]]] = {}

    def walk(items: list, parents: tuple[str, ...]) -> None:
        last: tuple[str, ...] = parents
        for item in items:
            if isinstance(item, list):
                walk(item, last)
                continue
            try:
                page = reader.get_destination_page_number(item) + 1  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 - a bookmark to nowhere is not a heading
                continue
            last = (*parents, str(item.title).strip())
            marks.setdefault(page, []).append(last)

    try:
        walk(reader.outline, ())  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a broken outline leaves the pages without headings
        return {}
    return marks


_READERS: dict[str, Callable[[Path], Document | Skipped]] = {
    ".txt": _read_text,
    ".md": _read_markdown,
    ".html": _read_html,
    ".docx": _read_docx,
    ".pdf": _read_pdf,
}
