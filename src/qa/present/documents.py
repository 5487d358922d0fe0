"""Documents added and removed from the page: who may, safe file names, saving, removing.

The page stays a thin shell: it hands uploaded files to `add` and a document path to `remove`,
with a callback that rebuilds the index (`qa.build.build_index(..., locked=True)`). Nothing
here imports Streamlit.

Guarantees:
  * the page acts only on the documents folder the live index was built from (recorded in its
    manifest; ./corpus or $QA_CORPUS before the first build); when $QA_CORPUS names another
    folder, the page neither builds nor adds nor removes, and says why;
  * adding and removing hold the index's build lock from the decision to the end, so that
    pages in any number of sessions and processes (and `qa build`) take turns: a removal is
    decided on the index as it is then (the last document is never removed), the index without
    the document goes live before its file is deleted, and an upload is deleted again when the
    index cannot be built with it: an operation that cannot finish changes nothing on disk;
  * a saved file lands inside the corpus folder under a cleaned name (no folders, no hidden
    files, no path escapes), is written aside and linked into place in one step, and never
    replaces another file: a different file of the same name is kept and the upload is saved
    under a numbered name ("notes-2.md");
  * a file that is too large (for the page, $QA_UPLOAD_MAX_MB, or for a build,
    $QA_MAX_FILE_MB: the smaller limit holds), of a type `qa` does not read, unreadable (past
    the reading limits too) or without any text is refused with a message, and nothing is
    written; a file accepted was read once, and the build that follows takes its text from
    that read;
  * adding and removing are off when configured off ($QA_PAGE_UPLOADS=0), when the index lives
    in a store the page may not write (anything but a local index folder: a shared database),
    or when the corpus folder or the index folder cannot be written.
"""

from __future__ import annotations

import os
import re
import secrets
import unicodedata
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from qa import config
from qa.errors import QAError, as_qa_error
from qa.ingest.loaders import SUPPORTED_SUFFIXES, OnPage, parse_file
from qa.store.files import can_write

MAX_NAME_CHARS = 120
MAX_NAME_BYTES = 240  # in UTF-8: file systems allow 255 bytes, and "-999" may be added
_UNSAFE = re.compile(r"[^\w .,()+=@&'-]")  # anything else in a name becomes "_"
KINDS = ", ".join(sorted(SUPPORTED_SUFFIXES))


@dataclass(frozen=True)
class Access:
    """What the page may do to the documents and the index, and where.

    Attributes:
        rebuild: the page may build the index (a local index folder, from `corpus`).
        manage: readers may also add and remove documents.
        reason: why `manage` is off, in words ("" when on).
        corpus: the documents folder the page builds from, adds to and removes from.
    """

    rebuild: bool
    manage: bool
    reason: str = ""
    corpus: Path = field(default_factory=config.corpus_dir)


def access(store, configured: Path | None = None) -> Access:
    """What the page may do with this store, and in which documents folder (see the module
    text). `configured`: the folder the user named ($QA_CORPUS), None when none was named."""
    from qa.store.local import LocalStore

    corpus = configured or config.corpus_dir()
    if not isinstance(store, LocalStore):
        return Access(False, False, "the index is shared; documents are added where it is built",
                      corpus)  # fmt: skip
    built_from = built_from_folder(store)
    if built_from is not None:
        if configured is not None and not same_folder(configured, built_from):
            return Access(False, False, f"the index was built from {built_from}, not from "
                          f"{configured} ({config.CORPUS})", built_from)  # fmt: skip
        corpus = built_from
        if not corpus.is_dir():  # moved or deleted: an upload would start an index afresh
            return Access(True, False, f"the documents folder {corpus} the index was built "
                          "from is missing", corpus)  # fmt: skip
    if not config.page_uploads():
        return Access(True, False, f"adding and removing documents is turned off "
                                   f"({config.PAGE_UPLOADS}=0)", corpus)  # fmt: skip
    if not can_write(corpus):
        return Access(True, False, f"the documents folder {corpus} is read-only", corpus)
    if reason := store.read_only():
        return Access(True, False, reason, corpus)
    return Access(True, True, "", corpus)


def built_from_folder(store) -> Path | None:
    """The documents folder the live index was built from (None: no readable index)."""
    try:
        corpus = store.manifest().get("corpus")
    except QAError:
        return None
    return Path(corpus) if corpus else None


def same_folder(a: Path, b: Path) -> bool:
    """Whether two paths name the same folder (links and relative paths resolved)."""
    return Path(a).resolve() == Path(b).resolve()


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
    no leading dots or spaces, at most `MAX_NAME_CHARS` characters and `MAX_NAME_BYTES` bytes
    of UTF-8, the suffix kept.

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
    stem = (stem.strip(" .") or "document")[: MAX_NAME_CHARS - len(suffix)]
    budget = MAX_NAME_BYTES - len(suffix.encode())
    stem = stem.encode()[:budget].decode("utf-8", "ignore")  # (a character cut in two goes)
    return (stem.rstrip(" .") or "document") + suffix


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
    what, setting = "for adding a file", config.UPLOAD_MAX_MB
    try:
        build_limit = config.max_file_bytes()  # (0: none)
    except ValueError:  # a bad $QA_MAX_FILE_MB: the build says so
        build_limit = 0
    if build_limit and build_limit < limit:  # the build would skip it: never save it
        limit, what, setting = build_limit, "of a file the index reads", "QA_MAX_FILE_MB"
    if len(data) > limit:
        raise QAError(f"{name} is {_megabytes(len(data))}, over the {_megabytes(limit)} limit "
                      f"{what}", f"split it into smaller files, or raise {setting}")
    safe = clean_name(name)
    try:
        document = parse_file(safe, data, {}, on_page)
    except ValueError as exc:
        raise QAError(f"cannot read {name}: {exc}", "check that the file opens in its own "
                      "program, or save it as text") from None  # fmt: skip
    if not document.text.strip():
        raise QAError(
            f"{name} has no text to index",
            "its pages hold no text that could be read, even by OCR: add a text version of it"
            if safe.lower().endswith(".pdf") else "add a file with some text in it",
        )
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
        if target.is_file() and not target.is_symlink() and _same(target, data):
            return Saved(name, candidate, existed=True)  # (a link's target is never compared)
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


def document_file(corpus: Path, doc: str) -> Path:
    """The file of an indexed document, inside the corpus folder (not resolved: a symbolic
    link stays the link).

    Raises:
        QAError: the path leads outside the corpus folder.
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
    return folder / parts[-1]


@contextmanager
def build_lock(store, corpus: Path) -> Iterator[dict]:
    """Hold the index's build lock (after other builds), and yield the live manifest ({} before
    the first build), once sure that the index is still built from `corpus`.

    Raises:
        QAError: the lock cannot be taken, or the index is now built from another folder.
    """
    with ExitStack() as held:
        try:
            held.enter_context(store.lock(wait=True))
        except OSError as exc:
            raise as_qa_error(exc) from None
        built_from = built_from_folder(store)
        if built_from is not None and not same_folder(built_from, corpus):
            raise QAError(f"the index is now built from {built_from}, not from {corpus}",
                          "reload the page")  # fmt: skip
        yield live_manifest(store)


def live_manifest(store) -> dict:
    """The live build's manifest, or {} when there is none."""
    try:
        return store.manifest()
    except QAError:
        return {}


def remove(store, corpus: Path, doc: str, rebuild: Callable[[Collection[str]], object]) -> None:
    """Remove an indexed document: under the build lock, build the index without it, then
    delete its file (a symbolic link is removed itself, never what it points to).

    Args:
        store: the index (a `LocalStore`).
        corpus: the folder the index is built from (`Access.corpus`).
        doc: the document's path, as the index lists it.
        rebuild: builds the index leaving out the paths it is given, while this holds the lock
            (`build_index(..., without=paths, locked=True)`); raises QAError when it fails,
            and then nothing is deleted.

    Raises:
        QAError: refused (not a document in the index, its last document, a path outside the
            corpus), the build failed, or the file cannot be deleted (the index no longer
            holds it).
    """
    path = document_file(corpus, doc)
    with build_lock(store, corpus) as manifest:
        indexed = [d["path"] for d in manifest.get("documents", [])]
        if doc not in indexed:
            raise QAError(f"{doc} is not in the index any more", "pick one from the list")
        if len(indexed) == 1:
            raise QAError(f"{doc} is the last document in the index",
                          "add another document before removing this one")  # fmt: skip
        rebuild({doc})
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise QAError(f"{doc} left the index, but its file cannot be deleted: "
                          f"{exc.strerror or exc}",
                          "check that the documents folder may be written") from None


@dataclass
class Added:
    """What adding uploads came to.

    Attributes:
        saved: the uploads saved and indexed.
        refused: the uploads refused, as errors to show.
        error: why none was added (the build failed: those saved were deleted again), or None.
    """

    saved: list[Saved] = field(default_factory=list)
    refused: list[QAError] = field(default_factory=list)
    error: QAError | None = None


def add(store, corpus: Path, uploads: list[tuple[str, bytes]], rebuild: Callable[[], object],
        reading: Callable[[str], OnPage | None] = lambda name: None) -> Added:  # fmt: skip
    """Save uploaded files (name, bytes) into the corpus folder and index them, under the
    build lock (see `save_upload` for names and refusals).

    `rebuild` builds the index while this holds the lock (`build_index(..., locked=True)`);
    it raises QAError when it fails, and then the files saved here are deleted again.
    `reading(name)` gives the callback that follows the pages of a file being read (OCR).
    """
    added = Added()
    try:
        with build_lock(store, corpus):
            for name, data in uploads:
                try:
                    added.saved.append(save_upload(corpus, name, data, on_page=reading(name)))
                except QAError as exc:
                    added.refused.append(exc)
            new = [s for s in added.saved if not s.existed]
            try:
                if new:
                    rebuild()
            except BaseException:
                for s in new:
                    (corpus / s.path).unlink(missing_ok=True)
                added.saved = [s for s in added.saved if s.existed]
                raise
    except QAError as exc:
        added.error = exc
    return added


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
