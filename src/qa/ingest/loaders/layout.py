"""Pages of lines -> text: paragraphs, headings and running lines found from the layout.

Typed PDF pages (`pdf.py`) and recognised page images (`ocr.py`) both give, for each page, its
lines with their position and size; from those:

- lines are grouped into paragraphs where the gap between two lines is clearly larger than the
  document's usual line spacing, or where the size changes;
- a short line set larger than the body text (or bold, when the body is not) is a heading;
- page numbers, and running headers and footers repeated on most pages, are dropped;
- a word hyphenated at the end of a line is joined again ("treat-" + "ment" -> "treatment").
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from qa.ingest.loaders.base import TextBuilder

HEADING_SIZE_RATIO = 1.12  # a heading is set at least this much larger than the body text
PARAGRAPH_GAP_RATIO = 1.3  # a gap this many times the usual line spacing starts a paragraph
MAX_HEADING_WORDS = 20
_PAGE_NUMBER = re.compile(r"(?:page\s+)?\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?|[ivxlc]{1,6}", re.I)


@dataclass
class Line:
    """One line of a page, with the layout facts paragraphs and headings are found from."""

    text: str
    y: float | None = None
    size: float = 0.0
    bold: bool = False
    heading: bool = False


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


def largest_first_heading(headings: list[tuple[int, float, str]]) -> str:
    """The largest heading on the first page that has headings (the earliest among equals)."""
    if not headings:
        return ""
    first = [h for h in headings if h[0] == headings[0][0]]
    return max(first, key=lambda h: h[1])[2]


def layout(pages: list[list[Line]]) -> tuple[TextBuilder, list[tuple[int, float, str]]]:
    """The text of pages of lines (typed or recognised): running lines dropped, headings and
    paragraphs found, each page a page of the TextBuilder.

    Returns:
        (the TextBuilder, the headings as (page index, size, text)).
    """
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
    return out, headings
