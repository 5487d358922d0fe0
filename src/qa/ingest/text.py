"""Small text helpers shared by chunking, embedding and search: normalisation and sentences."""

from __future__ import annotations

import re

_SPACES = re.compile(r"\s+")
# A sentence ends at . ! ? (or an ellipsis), optionally followed by closing quotes or brackets,
# then white space. Offsets are kept so that sentences map back to the text.
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u2019\u201d)\]]*(?=\s)")


def normalize(text: str) -> str:
    """Collapse every run of white space (no-break spaces included) to one space and strip."""
    return _SPACES.sub(" ", text).strip()


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Split text[start:end] into sentences, as (start, end) offsets into `text`.

    The spans are trimmed of surrounding white space, never empty, in order, and cover every
    non-space character of the range.
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    pos = start
    for match in _SENTENCE_END.finditer(text, start, end):
        append_trimmed(text, pos, match.end(), spans)
        pos = match.end()
    append_trimmed(text, pos, end, spans)
    return spans


def append_trimmed(text: str, start: int, end: int, out: list[tuple[int, int]]) -> None:
    """Append text[start:end], trimmed of white space, to `out` as a span, unless it is empty."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        out.append((start, end))
