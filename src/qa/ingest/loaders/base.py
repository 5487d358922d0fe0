"""What every loader produces: a `Document`, and the `TextBuilder` that assembles one.

Every loader turns a file into *the loaded text*: the plain text a reader should read, with no
markup. Chunk offsets index into it, so `chunk.text == document.text[start:end]` for every format.
Where the file itself is text (.txt, .md), the loader also keeps a *source map* from offsets in the
loaded text to offsets in the file's decoded text, so every passage maps back to the file.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

# (start in the loaded text, start in the file's decoded text, length) of a verbatim copied run
SourceRun = tuple[int, int, int]


@dataclass(frozen=True)
class Document:
    """One loaded document.

    Attributes:
        path: path relative to the corpus folder, with forward slashes (the document's id).
        text: the loaded text: plain, without markup (offsets index into it).
        kind: "text", "markdown", "html" or "pdf".
        title: a readable title (metadata, first heading, or the file name).
        sha256: hash of the raw bytes, for staleness checks and incremental builds.
        headings: (start, end) spans of `text` that are headings, as the loader found them;
            None when the format has no marked headings (plain text: the chunker guesses them).
        pages: offset in `text` where each page starts (PDF); empty for formats without pages.
        source_map: runs of `text` copied verbatim from the file's decoded text, as
            (text start, file start, length), sorted; None when the file is not text (HTML, PDF).
    """

    path: str
    text: str
    kind: str = "text"
    title: str = ""
    sha256: str = ""
    metadata: dict = field(default_factory=dict, compare=False)
    headings: tuple[tuple[int, int], ...] | None = None
    pages: tuple[int, ...] = ()
    source_map: tuple[SourceRun, ...] | None = None

    def page_at(self, offset: int) -> int | None:
        """The 1-based page that holds `offset` of the loaded text, or None without pages."""
        if not self.pages:
            return None
        return max(1, bisect_right(self.pages, offset))

    def source_span(self, start: int, end: int) -> tuple[int, int] | None:
        """Where text[start:end] comes from in the file's decoded text, or None (HTML, PDF).

        The span runs from the file position of the first character that was copied from the file
        to just after the last one; characters the loader inserted (separators) map to the
        nearest copied neighbour.
        """
        runs = self.source_map
        if not runs or end <= start:
            return None
        i = bisect_right(runs, start, key=_run_start) - 1
        if i >= 0 and start < runs[i][0] + runs[i][2]:
            src_start = runs[i][1] + start - runs[i][0]
        elif i + 1 < len(runs):
            src_start = runs[i + 1][1]
        else:
            return None
        j = bisect_right(runs, end - 1, key=_run_start) - 1
        if j < 0:
            return None
        if end - 1 < runs[j][0] + runs[j][2]:
            src_end = runs[j][1] + end - runs[j][0]
        else:
            src_end = runs[j][1] + runs[j][2]
        return (src_start, src_end) if src_end > src_start else None


def _run_start(run: SourceRun) -> int:
    return run[0]


def title_from_filename(path: str) -> str:
    """'reports/chronic-middle-back-pain.txt' -> 'Chronic middle back pain'."""
    stem = Path(path).stem.replace("_", " ").replace("-", " ").strip()
    return stem[:1].upper() + stem[1:] if stem else path


def sha256(data: bytes) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(data).hexdigest()


class TextBuilder:
    """Assembles a loaded text piece by piece, with its headings, pages and source map.

    Blocks are separated by blank lines, so the chunker sees every heading and paragraph as a
    block of its own; a page break is always a block break, so a passage never spans two pages.
    """

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._tail = ""  # the last two characters written
        self.length = 0
        self.headings: list[tuple[int, int]] = []
        self.pages: list[int] = []
        self.runs: list[list[int]] = []

    def text(self) -> str:
        """Everything written so far."""
        return "".join(self._parts)

    def since(self, start: int) -> str:
        """What was written from offset `start` on (cheap for a short tail)."""
        tail, length = [], self.length
        for part in reversed(self._parts):
            if length <= start:
                break
            tail.append(part)
            length -= len(part)
        return "".join(reversed(tail))[start - length :]

    def add(self, piece: str, source: int | None = None) -> None:
        """Append `piece`; `source` is where it starts in the file when copied verbatim from it."""
        if not piece:
            return
        if source is not None:
            last = self.runs[-1] if self.runs else None
            if last and last[0] + last[2] == self.length and last[1] + last[2] == source:
                last[2] += len(piece)
            else:
                self.runs.append([self.length, source, len(piece)])
        self._parts.append(piece)
        self.length += len(piece)
        self._tail = (self._tail + piece)[-2:]

    def separate(self, sep: str = "\n\n") -> None:
        """End the current line ("\\n") or block ("\\n\\n"); nothing at the very start."""
        if not self.length:
            return
        if sep == "\n\n":
            need = "" if self._tail == "\n\n" else ("\n" if self._tail.endswith("\n") else "\n\n")
        else:
            need = "" if self._tail.endswith("\n") else "\n"
        self.add(need)

    def mark_heading(self, start: int) -> None:
        """Record what was written since `start` (trimmed) as a heading, if anything."""
        text = self.text()
        end = self.length
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            self.headings.append((start, end))

    def heading(self, title: str, source: int | None = None) -> None:
        """Write a heading as a block of its own."""
        self.separate()
        start = self.length
        self.add(title, source)
        self.mark_heading(start)
        self.separate()

    def new_page(self) -> None:
        """Start a new page: a block break, then record where the page's text starts."""
        self.separate()
        self.pages.append(self.length)

    def document(self, path: str, data: bytes, kind: str, title: str, **extra) -> Document:
        """The finished Document (`title` falls back to the file name)."""
        return Document(
            path,
            self.text(),
            kind,
            title or title_from_filename(path),
            sha256(data),
            headings=tuple(self.headings),
            pages=tuple(self.pages),
            source_map=tuple((a, b, c) for a, b, c in self.runs) if self.runs else None,
            **extra,
        )
