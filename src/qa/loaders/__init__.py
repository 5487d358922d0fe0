"""Load a folder of documents: .txt, .md, .html/.htm and .pdf files, recursively, in a stable order.

One module per format turns a file into a `Document` whose `text` is *the loaded text*: plain
text a reader reads, without markup. Chunk offsets index into it. Formats:

    plain.py     .txt          the decoded file, exactly (no-break spaces and all)
    markdown.py  .md           rendered without markup; a source map leads back to the file
    html.py      .html, .htm   the main content only; boilerplate never indexed
    pdf.py       .pdf          text in reading order, page by page, headings from the layout

Unsupported, unreadable or undecodable files are skipped and listed with a reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qa.errors import QAError
from qa.loaders import html, markdown, pdf, plain
from qa.loaders.base import Document, TextBuilder, title_from_filename
from qa.loaders.plain import decode

__all__ = [
    "Document", "LoadResult", "LOADERS", "SUPPORTED_SUFFIXES", "TextBuilder", "decode",
    "iter_files", "load_corpus", "load_file", "title_from_filename",
]  # fmt: skip

log = logging.getLogger(__name__)

Loader = Callable[[str, bytes], Document]

# file suffix (lower case) -> (kind, loader)
LOADERS: dict[str, tuple[str, Loader]] = {
    ".txt": ("text", plain.load),
    ".md": ("markdown", markdown.load),
    ".markdown": ("markdown", markdown.load),
    ".html": ("html", html.load),
    ".htm": ("html", html.load),
    ".pdf": ("pdf", pdf.load),
}
SUPPORTED_SUFFIXES = {suffix: kind for suffix, (kind, _) in LOADERS.items()}


@dataclass
class LoadResult:
    """Documents loaded from a corpus, plus the files skipped and why."""

    documents: list[Document]
    skipped: list[tuple[str, str]]


def load_file(root: Path, path: Path) -> Document:
    """Load one file under `root` with the loader for its suffix.

    Raises:
        ValueError: the file is unreadable, of an unsupported type, or cannot be decoded.
    """
    rel = path.relative_to(root).as_posix()
    suffix = path.suffix.lower()
    if suffix not in LOADERS:
        raise ValueError(f"unsupported file type {path.suffix or '(none)'}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from None
    return LOADERS[suffix][1](rel, data)


def iter_files(root: Path) -> list[Path]:
    """Every file under `root`, recursively, sorted by relative path (hidden entries skipped)."""
    found: list[Path] = []
    errors: list[OSError] = []
    for dirpath, dirnames, filenames in os.walk(root, onerror=errors.append):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath, f) for f in filenames if not f.startswith("."))
    for exc in errors:
        if Path(exc.filename) == root:
            raise QAError(
                f"cannot read corpus folder {root}: {exc.strerror}",
                "check the folder's permissions",
            )
        log.warning("skipped folder %s: %s", exc.filename, exc.strerror)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def load_corpus(root: str | os.PathLike) -> LoadResult:
    """Load every supported document under `root`, in a stable (sorted) order.

    Unsupported, unreadable, binary or undecodable files are skipped and listed in
    `LoadResult.skipped` with a reason; they never stop the load.

    Raises:
        QAError: the folder does not exist or cannot be read.
    """
    root = Path(root)
    if not root.is_dir():
        raise QAError(
            f"no corpus folder at {root}", "create it and put .txt, .md, .html or .pdf files in it"
        )
    documents: list[Document] = []
    skipped: list[tuple[str, str]] = []
    for path in iter_files(root):
        rel = path.relative_to(root).as_posix()
        try:
            documents.append(load_file(root, path))
        except ValueError as exc:
            log.debug("skipped %s: %s", rel, exc)  # callers report LoadResult.skipped
            skipped.append((rel, str(exc)))
    return LoadResult(documents, skipped)
