"""Texts already read, kept on disk, so an unchanged file is never read twice.

A scanned PDF takes seconds a page to recognise; a large page, seconds to parse; and every file
is read in a child process (`sandbox.py`), a round trip of about a millisecond. A file's
`Document` is kept under `config.cache_dir()/texts`, keyed by the hash of its bytes, its type and
the version of everything that reads it (the loaders' own source, the parsing libraries,
Tesseract): an incremental build, the page showing a passage in its document, and the build
after an upload (whose check read the file already) take the text from here. A changed file, or
a changed reader, gets a new key. Files that were refused are not kept: the next build tries
them again (they may have changed, or a limit been raised).

The folder is kept under `MAX_MB` by removing the least recently used entries (checked on the
first write of a process and every `PRUNE_EVERY` writes after it). A cache that cannot be read
or written is skipped (the file is read again), never an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from importlib import metadata
from pathlib import Path

from qa import config
from qa.ingest.loaders.base import Document, title_from_filename

log = logging.getLogger(__name__)

MAX_MB = 500
PRUNE_EVERY = 200
LIBRARIES = ("beautifulsoup4", "pypdf", "pypdfium2", "markdown-it-py", "charset-normalizer",
             "mammoth", "python-pptx", "odfpy", "ebooklib", "pillow")  # fmt: skip
_version: str | None = None
_writes = 0


def folder() -> Path:
    """Where the texts are kept."""
    return config.cache_dir() / "texts"


def readers_version() -> str:
    """A hash of everything that decides what a file reads as (computed once per process)."""
    global _version
    if _version is None:
        from qa.ingest.loaders import ocr

        digest = hashlib.sha256()
        for source in sorted(Path(__file__).parent.glob("*.py")) + [_text_module()]:
            digest.update(source.read_bytes())
        for name in LIBRARIES:
            try:
                digest.update(f"{name}={metadata.version(name)}".encode())
            except metadata.PackageNotFoundError:
                digest.update(f"{name}=none".encode())
        digest.update(ocr.version().encode())
        _version = digest.hexdigest()[:16]
    return _version


def _text_module() -> Path:
    return Path(__file__).parents[1] / "text.py"


def key(rel: str, data: bytes) -> str:
    """The cache key of a file's bytes, read as its type says."""
    suffix = Path(rel).suffix.lower()
    return hashlib.sha256(
        hashlib.sha256(data).digest() + f"\x00{suffix}\x00{readers_version()}".encode()
    ).hexdigest()


def get(key_: str, rel: str) -> Document | None:
    """The document kept under `key_`, as the file `rel` (None when there is none).

    A title that is (or reads like) the kept file's name does not move to another name: the
    file is then read again, for its own title."""
    path = folder() / f"{key_}.json"
    try:
        with open(path, encoding="utf-8") as fh:
            stored = json.load(fh)
        named = stored["title"] == title_from_filename(stored["path"])
        if named and title_from_filename(rel) != stored["title"]:
            return None
        os.utime(path)  # recently used
        document = Document(
            path=rel, text=stored["text"], kind=stored["kind"], title=stored["title"],
            sha256=stored["sha256"], metadata=stored["metadata"],
            headings=_tuples(stored["headings"]), pages=tuple(stored["pages"]),
            source_map=_tuples(stored["source_map"]),
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return document


def _tuples(rows: list | None) -> tuple | None:
    """JSON's lists of lists as the tuples of tuples a Document holds (None stays None)."""
    return None if rows is None else tuple(tuple(row) for row in rows)


def put(key_: str, document: Document) -> None:
    """Keep `document` under `key_` (written aside, then renamed into place)."""
    stored = {
        "path": document.path, "text": document.text, "kind": document.kind,
        "title": document.title,
        "sha256": document.sha256, "metadata": document.metadata,
        "headings": document.headings, "pages": document.pages,
        "source_map": document.source_map,
    }  # fmt: skip
    target = folder() / f"{key_}.json"
    temp = target.with_name(f".{secrets.token_hex(8)}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(temp, "w", encoding="utf-8") as fh:
            json.dump(stored, fh, ensure_ascii=False)
        os.replace(temp, target)
        global _writes
        _writes += 1
        if _writes % PRUNE_EVERY == 1:
            prune(folder())
    except (OSError, TypeError, ValueError) as exc:
        log.debug("cannot keep the text of %s: %s", document.path, exc)
    finally:
        temp.unlink(missing_ok=True)


def prune(where: Path, max_bytes: int = MAX_MB * 1_000_000) -> None:
    """Remove the least recently used entries until the folder holds at most `max_bytes`."""
    entries = []
    for path in where.glob("*.json"):
        try:
            st = path.stat()
        except OSError:
            continue
        entries.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in entries)
    for _, size, path in sorted(entries):
        if total <= max_bytes:
            break
        path.unlink(missing_ok=True)
        total -= size
