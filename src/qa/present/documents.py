"""Documents added and removed from the page: who may, safe file names, saving, removing.

The page stays a thin shell: it hands uploaded bytes to `save_upload`, a document path to
`remove`, and rebuilds the index with `qa.build.build_index` afterwards (incrementally, under
the build lock). Nothing here imports Streamlit.

Guarantees:
  * a saved file lands inside the corpus folder under a cleaned name (no folders, no hidden
    files, no path escapes), is written aside and linked into place in one step, and never
    replaces another file: a different file of the same name is kept and the upload is saved
    under a numbered name ("notes-2.md");
  * a file that is too large, of a type `qa` does not read, unreadable (past the reading
    limits too) or without any text is refused with a message, and nothing is written; a file
    accepted was read once, and the build that follows takes its text from that read;
  * adding and removing are off when configured off ($QA_PAGE_UPLOADS=0), when the index lives
    in a store the page may not write (anything but a local index folder: a shared database),
    or when the corpus folder cannot be written.
"""

from __future__ import annotations

import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from qa import config
from qa.errors import QAError
from qa.ingest.loaders import SUPPORTED_SUFFIXES, OnPage, parse_file

MAX_NAME_CHARS = 120
_UNSAFE = re.compile(r"[^\w .,()+=@&'-]")  # anything else in a name becomes "_"
KINDS = ", ".join(sorted(SUPPORTED_SUFFIXES))


@dataclass(frozen=True)
class Access:
    """What the page may do to the documents and the index.

    Attributes:
        rebuild: the page may build the index (a local index folder).
        manage: readers may also add and remove documents.
        reason: why `manage` is off, in words ("" when on).
    """

    rebuild: bool
    manage: bool
    reason: str = ""


def access(store, corpus: Path) -> Access:
    """What the page may do with this store and corpus folder (see the module text)."""
    from qa.store.local import LocalStore

    if not isinstance(store, LocalStore):
        return Access(False, False, "the index is shared; documents are added where it is built")
    if not config.page_uploads():
        return Access(True, False, f"adding and removing documents is turned off "
                                   f"({config.PAGE_UPLOADS}=0)")  # fmt: skip
    folder = corpus if corpus.exists() else corpus.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        return Access(True, False, "the documents folder is read-only")
    return Access(True, True)


def another_build_running(store) -> bool:
    """Whether another build holds the index's build lock now (a build started next waits)."""
    try:
        with store.lock(wait=False):
            return False
    except QAError:
        return True
    except OSError:  # no folder to lock (cannot be created): no build either; building says why
        return False


def clean_name(name: str) -> str:
    """A safe file name for an upload: its last path part, NFC, no control or odd characters,
    no leading dots or spaces, at most `MAX_NAME_CHARS` characters, the suffix kept.

    Raises:
        QAError: nothing usable is left, or the type is not one `qa` reads.
    """
    base = re.split(r"[/\\]", unicodedata.normalize("NFC", name))[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    base = " ".join(_UNSAFE.sub("_", base).split()).lstrip(". ").rstrip(". ")
    stem, suffix = os.path.splitext(base)
    if suffix.lower() not in SUPPORTED_SUFFIXES:
        raise QAError(
            f"{name or 'a file without a name'}: {suffix or 'files without a type'} "
            "cannot be read",
            f"add files of these types: {KINDS}",
        )
    stem = stem.strip(" .") or "document"
    return stem[: MAX_NAME_CHARS - len(suffix)].rstrip(" .") + suffix


@dataclass(frozen=True)
class Saved:
    """An upload as saved.

    Attributes:
        name: the uploaded file's name, as the reader's browser gave it.
        path: where it is, relative to the corpus folder.
        existed: an identical file was already there (nothing was written).
    """

    name: str
    path: str
    existed: bool = False

    @property
    def renamed(self) -> bool:
        return not self.existed and self.path != clean_name(self.name)


def check_upload(name: str, data: bytes, max_bytes: int | None = None,
                 on_page: OnPage | None = None) -> str:  # fmt: skip
    """The cleaned name of an upload that may be saved. It is read once, within the reading
    limits (`qa.ingest.loaders.sandbox`), and its text kept for the build that follows.

    Args:
        on_page: called with (name, done, total) as the pages of a scan are recognised.

    Raises:
        QAError: too large, a type `qa` does not read, unreadable, or without text.
    """
    limit = config.upload_max_bytes() if max_bytes is None else max_bytes
    if len(data) > limit:
        raise QAError(
            f"{name} is {_megabytes(len(data))}, over the {_megabytes(limit)} limit",
            f"split it into smaller files, or raise {config.UPLOAD_MAX_MB}",
        )
    safe = clean_name(name)
    try:
        document = parse_file(safe, data, {}, on_page)
    except ValueError as exc:
        raise QAError(f"cannot read {name}: {exc}", "check that the file opens in its own "
                      "program, or save it as text") from None  # fmt: skip
    if not document.text.strip():
        raise QAError(f"{name} has no text to index", "add a file with text in it")
    return safe


def save_upload(corpus: Path, name: str, data: bytes, max_bytes: int | None = None,
                on_page: OnPage | None = None) -> Saved:  # fmt: skip
    """Save an uploaded file into the corpus folder (see the module text; `on_page` as for
    `check_upload`).

    Raises:
        QAError: refused (see `check_upload`), or the folder cannot be written.
    """
    safe = check_upload(name, data, max_bytes, on_page)
    try:
        corpus.mkdir(parents=True, exist_ok=True)
        _remove_stale_uploads(corpus)
        temp = corpus / f".{secrets.token_hex(8)}.upload"  # hidden: never loaded
        with open(temp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            return _link_free_name(corpus, safe, name, temp, data)
        finally:
            temp.unlink(missing_ok=True)
    except OSError as exc:
        raise QAError(f"cannot save {name} in {corpus}: {exc.strerror or exc}",
                      "check that the documents folder may be written") from None  # fmt: skip


STALE_UPLOAD_S = 3600  # a temporary upload file this old was left by a killed server


def _remove_stale_uploads(corpus: Path) -> None:
    """Remove temporary upload files that a killed server left behind (hidden: never indexed)."""
    import time

    for temp in corpus.glob(".*.upload"):
        try:
            if time.time() - temp.stat().st_mtime > STALE_UPLOAD_S:
                temp.unlink()
        except OSError:
            continue


def _link_free_name(corpus: Path, safe: str, name: str, temp: Path, data: bytes) -> Saved:
    """Link `temp` into the corpus as `safe`, or "stem-2.ext", ... when taken by another file."""
    stem, suffix = os.path.splitext(safe)
    for n in range(1, 1000):
        candidate = safe if n == 1 else f"{stem}-{n}{suffix}"
        target = corpus / candidate
        if target.is_file() and _same(target, data):
            return Saved(name, candidate, existed=True)
        try:
            os.link(temp, target)  # fails when the name exists: never overwrites
        except FileExistsError:
            continue
        return Saved(name, candidate)
    raise QAError(f"too many files named like {safe}", "rename the file and add it again")


def _same(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def remove(corpus: Path, doc: str) -> None:
    """Delete an indexed document's file from the corpus folder.

    Raises:
        QAError: the path leads outside the corpus folder, or the file cannot be deleted.
    """
    root = corpus.resolve()
    relative = PurePosixPath(doc)
    parts = relative.parts
    if not parts or relative.is_absolute() or any(part in (".", "..") for part in parts):
        raise QAError(f"{doc or 'a document without a name'} is not a document in {corpus}",
                      "pick one from the list")  # fmt: skip
    folder = root.joinpath(*parts[:-1]).resolve()
    if folder != root and root not in folder.parents:  # through a linked folder
        raise QAError(f"{doc} is not a document in {corpus}", "pick one from the list")
    path = folder / parts[-1]
    try:
        path.unlink()  # a symbolic link is removed itself, never what it points to
    except FileNotFoundError:
        return  # already gone: the rebuild drops it from the index
    except OSError as exc:
        raise QAError(f"cannot remove {doc}: {exc.strerror or exc}",
                      "check that the documents folder may be written") from None  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One document in the documents panel."""

    path: str
    title: str
    passages: int
    modified: str  # e.g. "2025-05-01" (UTC), "" when unknown


def rows(manifest: dict) -> list[Row]:
    """The indexed documents, in corpus order, with their passage counts and dates."""
    out = []
    for d in manifest.get("documents", []):
        mtime = d.get("mtime_ns")
        day = (
            f"{datetime.fromtimestamp(mtime / 1e9, timezone.utc):%Y-%m-%d}"
            if isinstance(mtime, int)
            else ""
        )
        out.append(Row(d["path"], d.get("title") or d["path"], int(d.get("chunks", 0)), day))
    return out


def passages_of(manifest: dict, path: str) -> int | None:
    """How many passages the index holds for a document (None: not indexed)."""
    for d in manifest.get("documents", []):
        if d.get("path") == path:
            return int(d.get("chunks", 0))
    return None


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"
