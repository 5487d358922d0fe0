"""PDF (.pdf): text in reading order, page by page, with paragraphs and headings from the layout.

pypdf extracts each page's text in content-stream order (the order the producer wrote it, which
is the reading order for nearly every generator, columns included) and reports, for each piece,
its position, font and size. From those:

- lines are grouped into paragraphs where the gap between two lines is clearly larger than the
  page's usual line spacing, or where the font size changes;
- a short line set larger than the body text (or bold, when the body is not) is a heading;
- page numbers, and running headers and footers repeated on most pages, are dropped;
- a word hyphenated at the end of a line is joined again ("treat-" + "ment" -> "treatment").

Every page starts a new block, so a passage never spans two pages and its page number is exact.
The title comes from the PDF's metadata, else its first heading, else the file name. Offsets index
the extracted text (a PDF has no text source to map back to); the page number locates a passage.
"""

from __future__ import annotations

import io
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass

from qa.ingest.loaders.base import Document, TextBuilder
from qa.ingest.text import normalize

HEADING_SIZE_RATIO = 1.12  # a heading is set at least this much larger than the body text
PARAGRAPH_GAP_RATIO = 1.3  # a gap this many times the usual line spacing starts a paragraph
MAX_HEADING_WORDS = 20
_BOLD = re.compile(r"bold|black|heavy|semibold|demi", re.I)
_PAGE_NUMBER = re.compile(r"(?:page\s+)?\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?|[ivxlc]{1,6}", re.I)
_JUNK_TITLE = re.compile(r"^(untitled|document\d*|microsoft word.*|.*\.(docx?|pdf|tex|dvi))$", re.I)


@dataclass
class Line:
    """One line of a page, with the layout facts paragraphs and headings are found from."""

    text: str
    y: float | None = None
    size: float = 0.0
    bold: bool = False
    heading: bool = False


def _matrix_product(a: list[float], b: list[float]) -> list[float]:
    """Product of two PDF matrices [a b c d e f]."""
    return [
        a[0] * b[0] + a[1] * b[2],
        a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2],
        a[2] * b[1] + a[3] * b[3],
        a[4] * b[0] + a[5] * b[2] + b[4],
        a[4] * b[1] + a[5] * b[3] + b[5],
    ]


def page_lines(page) -> list[Line]:
    """The lines of a pypdf page, in content-stream order, with position, size and weight."""
    lines: list[Line] = []
    pieces: list[tuple[str, float | None, float, str]] = []  # (text, y, size, font) of a line

    def finish() -> None:
        text = "".join(p[0] for p in pieces)
        if text.strip():
            placed = [p for p in pieces if p[0].strip()]
            main = max(placed, key=lambda p: len(p[0].strip()))
            y = next((p[1] for p in placed if p[1] is not None), None)
            lines.append(Line(normalize(text), y, main[2], bool(_BOLD.search(main[3]))))
        pieces.clear()

    def visit(text, cm, tm, font, size) -> None:
        m = _matrix_product(list(tm), list(cm))
        scale = math.hypot(m[2], m[3]) or 1.0
        y = m[5] if any(tm[4:6]) else None
        name = str((font or {}).get("/BaseFont", ""))
        parts = text.split("\n")
        for i, part in enumerate(parts):
            if i:
                finish()
            if part:
                pieces.append((part, y, float(size or 0) * scale, name))

    page.extract_text(visitor_text=visit)
    finish()
    return lines


def drop_running_lines(pages: list[list[Line]], body_size: float) -> list[list[Line]]:
    """Drop page numbers, and small headers/footers repeated at the top or bottom of most pages."""

    def key(line: Line) -> str:
        return re.sub(r"\d+", "#", line.text.lower())

    def edges(lines: list[Line]) -> list[Line]:
        return lines[:2] + lines[2:][-2:]

    counts: Counter[str] = Counter()
    for lines in pages:
        counts.update({key(line) for line in edges(lines)})
    repeated = {k for k, n in counts.items() if len(pages) >= 3 and n > len(pages) / 2}
    kept = []
    for lines in pages:
        drop = {
            id(line) for line in edges(lines)
            if _PAGE_NUMBER.fullmatch(line.text)
            or (key(line) in repeated and line.size <= body_size * HEADING_SIZE_RATIO)
        }  # fmt: skip
        kept.append([line for line in lines if id(line) not in drop])
    return kept


def body_size(pages: list[list[Line]]) -> tuple[float, bool]:
    """The font size most of the text is set in, and whether most of the text is bold."""
    sizes: Counter[float] = Counter()
    bold_chars = total = 0
    for lines in pages:
        for line in lines:
            sizes[round(line.size, 1)] += len(line.text)
            bold_chars += len(line.text) if line.bold else 0
            total += len(line.text)
    return (sizes.most_common(1)[0][0] if sizes else 0.0), bold_chars > total / 2


def mark_headings(pages: list[list[Line]], body: float, body_bold: bool) -> None:
    """Mark short lines set larger than the body text (or bold in a non-bold body) as headings."""
    for lines in pages:
        for line in lines:
            larger = line.size >= body * HEADING_SIZE_RATIO
            bolder = line.bold and not body_bold and line.size >= body * 0.95
            line.heading = (
                (larger or bolder)
                and len(line.text.split()) <= MAX_HEADING_WORDS
                and any(ch.isalpha() for ch in line.text)
                and not line.text.endswith((".", ",", ";", ":"))
            )


def _similar_size(a: float, b: float) -> bool:
    """Whether two font sizes are close enough to belong to one paragraph."""
    return max(a, b) < min(a, b) * HEADING_SIZE_RATIO


def line_spacing(pages: list[list[Line]]) -> dict[float, float]:
    """The usual distance between consecutive lines, per font size, over the whole document.

    The lower quartile of the gaps between consecutive lines of the same size: most gaps are
    ordinary line spacing, paragraph gaps are larger, and a page of one-line paragraphs still
    gets the spacing the rest of the document shows.
    """
    gaps: dict[float, list[float]] = {}
    for lines in pages:
        for a, b in zip(lines, lines[1:], strict=False):
            if a.y is not None and b.y is not None and a.y > b.y and _similar_size(a.size, b.size):
                gaps.setdefault(round(a.size, 1), []).append(a.y - b.y)
    return {size: sorted(g)[(len(g) - 1) // 4] for size, g in gaps.items()}


def paragraphs(lines: list[Line], spacing: dict[float, float]) -> list[list[Line]]:
    """Group a page's lines into paragraphs (a heading is a paragraph of its own kind)."""
    groups: list[list[Line]] = []
    for line in lines:
        prev = groups[-1][-1] if groups else None
        if prev is None or prev.heading != line.heading or not _similar_size(prev.size, line.size):
            groups.append([line])
            continue
        if prev.y is not None and line.y is not None:
            gap = prev.y - line.y
            usual = spacing.get(round(line.size, 1)) or line.size * 1.2
            if gap <= 0 or gap > usual * PARAGRAPH_GAP_RATIO:
                groups.append([line])
                continue
        groups[-1].append(line)
    return groups


def join_lines(lines: list[Line]) -> str:
    """One paragraph's text: lines joined by spaces, end-of-line hyphenation undone."""
    text = ""
    for line in lines:
        if re.search(r"[a-z]-$", text) and line.text[:1].islower():
            text = text[:-1] + line.text
        else:
            text = f"{text} {line.text}" if text else line.text
    return text


def _metadata_title(reader) -> str:
    try:
        title = normalize(str((reader.metadata or {}).get("/Title") or ""))
    except Exception:  # noqa: BLE001 - damaged metadata is no reason to lose the text
        return ""
    return "" if _JUNK_TITLE.match(title) else title


def _largest_first_heading(headings: list[tuple[int, float, str]]) -> str:
    """The largest heading on the first page that has headings (the earliest among equals)."""
    if not headings:
        return ""
    first = [h for h in headings if h[0] == headings[0][0]]
    return max(first, key=lambda h: h[1])[2]


def load(path: str, data: bytes) -> Document:
    """A PDF's text, page by page, with headings; `Document.pages` says where each page starts.

    Raises:
        ValueError: not a readable PDF, encrypted with a password, or without any text.
    """
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed-but-readable files are common
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ValueError("encrypted PDF (needs a password)")
        pages = [page_lines(page) for page in reader.pages]
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds on damaged files
        raise ValueError(f"unreadable PDF ({exc.__class__.__name__})") from None
    body, body_bold = body_size(pages)
    pages = drop_running_lines(pages, body)
    mark_headings(pages, body, body_bold)
    spacing = line_spacing(pages)
    out = TextBuilder()
    headings: list[tuple[int, float, str]] = []  # (page index, size, text)
    for number, lines in enumerate(pages):
        out.new_page()
        for group in paragraphs(lines, spacing):
            text = join_lines(group)
            if group[0].heading:
                out.heading(text)
                headings.append((number, group[0].size, text))
            else:
                out.separate()
                out.add(text)
    if not out.text().strip():
        raise ValueError("no text to extract (a scanned PDF?)")
    title = _metadata_title(reader) or _largest_first_heading(headings)
    return out.document(path, data, "pdf", title, metadata={"pages": len(pages)})
