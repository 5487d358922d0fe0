"""Small text helpers shared by chunking, embedding and search: normalisation and sentences."""

from __future__ import annotations

import re

_SPACES = re.compile(r"\s+")
# A sentence ends at . ! ? (or an ellipsis), optionally followed by closing quotes or brackets,
# then white space. Offsets are kept so that sentences map back to the text.
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u2019\u201d)\]]*(?=\s)")
# A list item is a sentence of its own: a line break before a line that starts with a bullet
# ("\u2022 ", as the Markdown loader writes list items) or an item number ("2. ", "2) ") ends a
# sentence, and the full stop of such an item number does not.
_ITEM = r"[ \t]*(?:\u2022|\d{1,3}[.)])[ \t]"
_ITEM_BREAK = re.compile(r"\n(?=" + _ITEM + ")")
_ITEM_NUMBER = re.compile(r"(?<![^\n])" + _ITEM)  # at the start of a line
# A table row, as the loaders write one (cells separated by " | ", a line of its own), is a
# sentence of its own too.
_ROW = re.compile(r"(?m)^[^\n|]*\S \| [^\n]*$")


def normalize(text: str) -> str:
    """Collapse every run of white space (no-break spaces included) to one space and strip."""
    return _SPACES.sub(" ", text).strip()


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Split text[start:end] into sentences, as (start, end) offsets into `text`.

    The spans are trimmed of surrounding white space, never empty, in order, and cover every
    non-space character of the range.
    """
    end = len(text) if end is None else end
    numbers = {m.end() - 1 for m in _ITEM_NUMBER.finditer(text, start, end)}  # after "2." + 1
    cuts = [m.end() for m in _SENTENCE_END.finditer(text, start, end) if m.end() not in numbers]
    if "\n" in text[start:end]:
        breaks = {m.start() for m in _ITEM_BREAK.finditer(text, start, end)}
        if " | " in text[start:end]:
            breaks.update(cut for m in _ROW.finditer(text, start, end) for cut in m.span())
        cuts = sorted(set(cuts).union(breaks))
    spans: list[tuple[int, int]] = []
    pos = start
    for cut in cuts:
        append_trimmed(text, pos, cut, spans)
        pos = cut
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
