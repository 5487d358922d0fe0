"""The per-document filter: which documents a search may answer from (`qa ask --doc PATTERN`).

A pattern is a shell-style glob (`*`, `?`, `[abc]`), matched without regard to case against the
document's path relative to the corpus folder (forward slashes) *or* against its file name alone.
Both are compared in Unicode's composed form (NFC): a name a Mac wrote decomposed ("e" and a
combining accent) matches "café" as typed.
`*` also matches `/`, so `notes/*` is everything under notes/, at any depth, and `*.pdf` is every
PDF wherever it lies. A pattern that starts with `/` is anchored at the corpus folder and matches
the whole path only (`/guide.pdf` is the guide at the top, not notes/guide.pdf); `exact(path)` makes
such a pattern for one document. Several patterns select the documents any of them matches.

The filter is applied before ranking, as a boolean mask over chunk ids that every ranker honours,
so a filtered search still returns k passages when the chosen documents have k.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from glob import escape

import numpy as np

from qa.errors import UsageError

Patterns = str | Sequence[str] | None


def as_patterns(patterns: Patterns) -> tuple[str, ...]:
    """One pattern or several, as a tuple without blanks ("" or None: no filter)."""
    if patterns is None:
        return ()
    if isinstance(patterns, str):
        patterns = [patterns]
    return tuple(p.strip() for p in patterns if p and p.strip())


def matches(pattern: str, path: str) -> bool:
    """Whether a document path matches a pattern (case-insensitive; path or file name)."""
    pattern, path = _folded(pattern), _folded(path)
    if pattern.startswith("/"):
        return fnmatchcase(path, pattern[1:])
    return fnmatchcase(path, pattern) or fnmatchcase(path.rsplit("/", 1)[-1], pattern)


def _folded(text: str) -> str:
    """Lower case, composed (NFC); ASCII, the common case, is only lower-cased."""
    return text.lower() if text.isascii() else unicodedata.normalize("NFC", text).lower()


def exact(path: str) -> str:
    """The pattern that matches one document path and nothing else."""
    return "/" + escape(path)


def select_documents(patterns: Patterns, paths: Iterable[str]) -> list[str] | None:
    """The document paths the patterns select, in the given order; None when there is no filter.

    Raises:
        UsageError: a pattern matches no document.
    """
    wanted = as_patterns(patterns)
    if not wanted:
        return None
    paths = list(paths)
    for pattern in wanted:
        if not any(matches(pattern, p) for p in paths):
            shown = ", ".join(paths[:5]) + (", ..." if len(paths) > 5 else "")
            raise UsageError(
                f"no document matches --doc {pattern!r}",
                f"patterns are globs on paths such as: {shown}" if paths else "build the index",
            )
    return [p for p in paths if any(matches(pattern, p) for pattern in wanted)]


def chunk_mask(docs: Sequence[str], chunk_docs: Sequence[str]) -> np.ndarray:
    """Boolean mask over chunk ids: True where the chunk belongs to one of `docs`."""
    allowed = set(docs)
    return np.fromiter((d in allowed for d in chunk_docs), dtype=bool, count=len(chunk_docs))
