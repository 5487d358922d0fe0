"""Structure-aware chunking: paragraphs under their section headings, sized to the model window.

A heading (one the loader marked: Markdown, HTML and PDF headings; in plain text, a short line
without closing punctuation that stands before a paragraph) becomes the *section* of the
paragraphs under it and is never a passage itself. A paragraph is the natural passage. A paragraph
that, with its section heading, would exceed the model window is split at sentence boundaries with
overlap, so the model never silently truncates text. Every chunk's `text` is exactly
`document.text[start:end]` (the loaded text); a chunk also records its page (PDF) and where it
comes from in the file (`source_start`, `source_end`: .txt and .md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from qa.ingest.loaders import Document
from qa.ingest.text import append_trimmed, normalize, sentence_spans

CHUNKER_VERSION = 2
DEFAULT_MAX_TOKENS = 254  # all-MiniLM-L6-v2: 256 word pieces minus [CLS] and [SEP]
DEFAULT_OVERLAP = 1  # sentences repeated between consecutive pieces of a split paragraph

TokenCounter = Callable[[str], int]

_BLANK_LINE = re.compile(r"\n[^\S\n]*\n\s*")
_CLOSING_PUNCT = tuple(".,;:!?\u2026\"'\u2019\u201d)]")
MAX_HEADING_CHARS = 100
MAX_HEADING_WORDS = 12


@dataclass(frozen=True)
class Chunk:
    """A passage: the unit that is embedded, searched and shown.

    Attributes:
        id: position in the index's chunk table.
        doc: document path relative to the corpus folder.
        section: the heading the passage stands under, or None.
        start, end: character offsets into the loaded document text.
        text: document.text[start:end], exactly.
        page: the 1-based page the passage is on (PDF), else None.
        source_start, source_end: where the passage is in the file's decoded text (.txt, .md),
            else None.
    """

    id: int
    doc: str
    section: str | None
    start: int
    end: int
    text: str
    page: int | None = None
    source_start: int | None = None
    source_end: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Block:
    """A stretch of text between blank lines, trimmed: a heading or a paragraph."""

    start: int
    end: int
    heading: str | None = None  # the heading text, when the block is a heading


def embed_context(section: str | None, title: str) -> str:
    """The heading a passage is embedded under: its section heading, else its document title."""
    return normalize(section or title or "")


def embed_text(section: str | None, title: str, text: str) -> str:
    """What the model sees for a passage: its section heading (or document title), then the text."""
    context = embed_context(section, title)
    body = normalize(text)
    return f"{context}\n{body}" if context else body


def paragraphs(text: str) -> list[tuple[int, int]]:
    """Spans of text separated by blank lines, trimmed of white space, never empty."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for match in _BLANK_LINE.finditer(text):
        append_trimmed(text, pos, match.start(), spans)
        pos = match.end()
    append_trimmed(text, pos, len(text), spans)
    return spans


def _marked_blocks(text: str, headings: tuple[tuple[int, int], ...]) -> list[Block]:
    """Blocks of a loaded text whose headings the loader marked (each one a block of its own)."""
    marked = dict(headings)
    return [
        Block(start, end, normalize(text[start:end]) if marked.get(start) == end else None)
        for start, end in paragraphs(text)
    ]


def looks_like_heading(line: str) -> bool:
    """A plain-text heading: one short line, capital or digit first, no closing punctuation."""
    line = normalize(line)
    return (
        0 < len(line) <= MAX_HEADING_CHARS
        and len(line.split()) <= MAX_HEADING_WORDS
        and (line[0].isupper() or line[0].isdigit())
        and not line.endswith(_CLOSING_PUNCT)
    )


def _text_blocks(text: str) -> list[Block]:
    """Plain text: a one-line block that looks like a heading and stands before a paragraph."""
    spans = paragraphs(text)
    blocks: list[Block] = []
    for i, (start, end) in enumerate(spans):
        raw = text[start:end]
        is_heading = (
            "\n" not in raw
            and looks_like_heading(raw)
            and i + 1 < len(spans)
            and not looks_like_heading(text[spans[i + 1][0] : spans[i + 1][1]])
        )
        blocks.append(Block(start, end, normalize(raw) if is_heading else None))
    return blocks


def blocks(document: Document) -> list[Block]:
    """Headings and paragraphs of a document, in order."""
    if document.headings is not None:
        return _marked_blocks(document.text, document.headings)
    return _text_blocks(document.text)


def chunk_document(
    document: Document,
    count_tokens: TokenCounter,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap: int = DEFAULT_OVERLAP,
    first_id: int = 0,
) -> list[Chunk]:
    """Cut a document into passages.

    Args:
        document: the loaded document.
        count_tokens: counts the model's word pieces in a string (no special tokens).
        max_tokens: the model window, special tokens excluded; the section heading counts too.
        overlap: sentences shared by consecutive pieces of a split paragraph.
        first_id: id of the first chunk (ids run on across documents).

    Returns:
        The chunks, in document order; each one's embed text fits in `max_tokens`.
    """
    chunks: list[Chunk] = []
    section: str | None = None
    text = document.text
    for block in blocks(document):
        if block.heading is not None:
            section = block.heading
            continue
        for start, end in split_paragraph(
            text, block.start, block.end, section, document.title, count_tokens, max_tokens, overlap
        ):
            source = document.source_span(start, end) or (None, None)
            chunks.append(
                Chunk(
                    first_id + len(chunks),
                    document.path,
                    section,
                    start,
                    end,
                    text[start:end],
                    document.page_at(start),
                    *source,
                )  # fmt: skip
            )
    return chunks


def split_paragraph(
    text: str,
    start: int,
    end: int,
    section: str | None,
    title: str,
    count_tokens: TokenCounter,
    max_tokens: int,
    overlap: int,
) -> list[tuple[int, int]]:
    """Spans of one paragraph, each fitting the window with its heading; whole when it fits."""
    if count_tokens(embed_text(section, title, text[start:end])) <= max_tokens:
        return [(start, end)]
    budget = max_tokens - count_tokens(normalize(section or title or "")) - 1
    budget = max(budget, 16)
    units: list[tuple[int, int, int]] = []  # (start, end, tokens) of sentences or word runs
    for s, e in sentence_spans(text, start, end):
        n = count_tokens(normalize(text[s:e]))
        if n <= budget:
            units.append((s, e, n))
        else:
            units.extend(_split_long_sentence(text, s, e, count_tokens, budget))
    return _pack(units, budget, overlap)


def _split_long_sentence(
    text: str, start: int, end: int, count_tokens: TokenCounter, budget: int
) -> Iterable[tuple[int, int, int]]:
    """A sentence longer than the window: runs of whole words that each fit."""
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text[start:end])]
    run_start, run_tokens, run_end = None, 0, 0
    for ws, we in words:
        ws, we = start + ws, start + we
        n = count_tokens(normalize(text[ws:we]))
        if n > budget:  # a single "word" longer than the window: cut it by characters
            if run_start is not None:
                yield run_start, run_end, run_tokens
                run_start, run_tokens = None, 0
            yield from _cut_word(text, ws, we, count_tokens, budget, n)
            continue
        if run_start is not None and run_tokens + n > budget:
            yield run_start, run_end, run_tokens
            run_start, run_tokens = None, 0
        if run_start is None:
            run_start = ws
        run_tokens += n
        run_end = we
    if run_start is not None:
        yield run_start, run_end, run_tokens


def _cut_word(
    text: str, start: int, end: int, count_tokens: TokenCounter, budget: int, tokens: int
) -> Iterable[tuple[int, int, int]]:
    """Cut one over-long run of characters into pieces that each fit `budget` tokens.

    Pieces start at the length the average density suggests and shrink until they fit, since
    the density varies along the run (digits, CJK, emoji tokenize very differently).
    """
    step = max(1, (end - start) * budget // (tokens + 1))
    cs = start
    while cs < end:
        ce = min(end, cs + step)
        n = count_tokens(text[cs:ce])
        while n > budget and ce - cs > 1:
            ce = cs + max(1, (ce - cs) * budget // (n + 1))
            n = count_tokens(text[cs:ce])
        yield cs, ce, n
        cs = ce


def _pack(units: list[tuple[int, int, int]], budget: int, overlap: int) -> list[tuple[int, int]]:
    """Greedily pack consecutive units into spans within budget, repeating `overlap` units."""
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(units):
        j, total = i, 0
        while j < len(units) and total + units[j][2] <= budget:
            total += units[j][2]
            j += 1
        j = max(j, i + 1)
        spans.append((units[i][0], units[j - 1][1]))
        if j >= len(units):
            break
        i = max(j - overlap, i + 1)
    return spans


def chunk_documents(
    documents: Iterable[Document],
    count_tokens: TokenCounter,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap: int = DEFAULT_OVERLAP,
) -> list[Chunk]:
    """Chunk many documents; chunk ids run on from 0 across them."""
    chunks: list[Chunk] = []
    for document in documents:
        chunks.extend(chunk_document(document, count_tokens, max_tokens, overlap, len(chunks)))
    return chunks
