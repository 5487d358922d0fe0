"""Load a folder of documents: UTF-8 .txt and .md files, recursively, in a stable order.

The text is kept exactly as decoded, so that chunk offsets map back to it; normalisation
(white space, no-break spaces) happens later, on what is embedded and tokenised.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from qa.errors import QAError

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = {".txt": "text", ".md": "markdown", ".markdown": "markdown"}


@dataclass(frozen=True)
class Document:
    """One loaded document.

    Attributes:
        path: path relative to the corpus folder, with forward slashes (the document's id).
        text: the decoded text, exactly as loaded (offsets index into it).
        kind: "text" or "markdown"; decides how headings are recognised.
        title: a readable title (first Markdown heading or the file name).
        sha256: hash of the raw bytes, for staleness checks and incremental builds.
    """

    path: str
    text: str
    kind: str = "text"
    title: str = ""
    sha256: str = ""
    metadata: dict = field(default_factory=dict, compare=False)


@dataclass
class LoadResult:
    """Documents loaded from a corpus, plus the files skipped and why."""

    documents: list[Document]
    skipped: list[tuple[str, str]]


def title_from_filename(path: str) -> str:
    """'reports/chronic-middle-back-pain.txt' -> 'Chronic middle back pain'."""
    stem = Path(path).stem.replace("_", " ").replace("-", " ").strip()
    return stem[:1].upper() + stem[1:] if stem else path


def decode(data: bytes) -> str:
    """Decode document bytes: UTF-8 (a BOM is dropped), or UTF-16 when it carries a BOM.

    Raises:
        ValueError: the bytes look binary or are not valid UTF-8.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" in data[:8192]:
        raise ValueError("binary file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid UTF-8 (byte {exc.start})") from None


def _markdown_title(text: str) -> str:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            title = stripped.lstrip("#").strip()
            if title:
                return title
    return ""


def load_file(root: Path, path: Path) -> Document:
    """Load one file under `root`.

    Raises:
        ValueError: the file is unreadable, binary or not valid UTF-8.
    """
    rel = path.relative_to(root).as_posix()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from None
    text = decode(data)
    kind = SUPPORTED_SUFFIXES[path.suffix.lower()]
    title = (_markdown_title(text) if kind == "markdown" else "") or title_from_filename(rel)
    return Document(rel, text, kind, title, hashlib.sha256(data).hexdigest())


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
        raise QAError(f"no corpus folder at {root}", "create it and put .txt or .md files in it")
    documents: list[Document] = []
    skipped: list[tuple[str, str]] = []
    for path in iter_files(root):
        rel = path.relative_to(root).as_posix()
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            skipped.append((rel, f"unsupported file type {path.suffix or '(none)'}"))
            continue
        try:
            documents.append(load_file(root, path))
        except ValueError as exc:
            log.warning("skipped %s: %s", rel, exc)
            skipped.append((rel, str(exc)))
    return LoadResult(documents, skipped)
