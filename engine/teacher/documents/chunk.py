"""Sections into chunks of about ``chunk_tokens`` tokens, each with its heading path and hash.

Splitting is semchunk's: it cuts at the largest structural break that fits
(blank lines, then lines, sentences, clauses, words) and overlaps neighbours a
little, so a fact on a boundary is whole in one of them. Tokens are counted with
the same estimate the cost forecast uses (about four characters a token, one and
a half for CJK). Chinese and Japanese run without spaces, so a line break is
put after each full-width sentence end first: semchunk then cuts between
sentences, not inside a word.

A chunk is known by its hash (heading path + text): unchanged chunks of an
edited document keep their hash, so their questions and answers are not bought
again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from engine.teacher.client import estimate_tokens
from engine.teacher.documents.extract import Document

OVERLAP = 0.1  # of chunk_tokens, shared with the neighbouring chunk
_CJK_SENTENCE_END = re.compile(r"([。！？；])(?=[^\s」』”）])")


@dataclass(frozen=True)
class Chunk:
    """One piece of a document the teacher writes questions on."""

    file: str
    title: str
    path: tuple[str, ...]
    page: int | None
    index: int  # within its document, from 0
    text: str

    @property
    def id(self) -> str:
        return f"{self.file}#{self.index}"

    @property
    def heading(self) -> str:
        return " > ".join(self.path)

    @property
    def hash(self) -> str:
        blob = "\x1f".join((*self.path, self.text)).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def tokens(self) -> int:
        return estimate_tokens(self.text)

    def source(self) -> dict[str, object]:
        """What ``meta.source`` of every record answered from this chunk says."""
        return {
            "file": self.file,
            "page": self.page,
            "section": self.heading,
            "chunk": self.id,
            "chunk_hash": self.hash,
        }


def chunk_document(document: Document, chunk_tokens: int) -> list[Chunk]:
    """The document's chunks in reading order; no chunk crosses a section or a page."""
    import semchunk

    chunks: list[Chunk] = []
    for section in document.sections:
        text = _CJK_SENTENCE_END.sub("\\1\n", section.text)
        pieces = semchunk.chunk(
            text, chunk_size=chunk_tokens, token_counter=estimate_tokens, overlap=OVERLAP
        )
        for piece in pieces:
            if piece.strip():
                chunks.append(
                    Chunk(
                        document.file,
                        document.title,
                        section.path,
                        section.page,
                        len(chunks),
                        piece.strip(),
                    )
                )
    return chunks
