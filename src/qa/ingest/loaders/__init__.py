"""Load a folder of documents, recursively, in a stable order.

One module per format turns a file into a `Document` whose `text` is *the loaded text*: plain
text a reader reads, without markup. Chunk offsets index into it. Formats (`formats.py`):

    plain.py         .txt           the decoded file, exactly (no-break spaces and all)
    markdown.py      .md            rendered without markup; a source map leads back to the file
    html.py          .html, .htm    the main content only; boilerplate never indexed
    pdf.py           .pdf           text in reading order, page by page, headings from the
                                    layout; pages without a text layer recognised (OCR)
    word.py          .docx          through mammoth and the HTML reader: headings, lists, tables
    opendocument.py  .odt           through odfpy and the HTML reader, alike
    ebook.py         .epub          chapters in spine order, each under its title
    slides.py        .pptx          one page per slide, its title the section, its notes under it
    image.py         .png .jpg .jpeg .tif .tiff   recognised (OCR, ocr.py), one page per frame

Every file is read in a child process with a memory and a time limit (`sandbox.py`), and what
was read is kept on disk for the next time (`cache.py`).

Unsupported, unreadable or undecodable files, anything that is not a regular file (a named
pipe), files over the size limit (`config.max_file_bytes`), files past the reading limits and
symbolic links that are broken, loop, lead outside the corpus folder or to a folder (unless
`config.follow_symlinks`: then only broken links and loops) are skipped and listed with a
reason: a link never publishes a file from outside the corpus folder unless asked to.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from qa import config
from qa.errors import QAError, UsageError
from qa.ingest.loaders import cache, sandbox
from qa.ingest.loaders.base import Document, TextBuilder, title_from_filename
from qa.ingest.loaders.formats import LOADERS, SUPPORTED_SUFFIXES
from qa.ingest.loaders.plain import decode

__all__ = [
    "Document", "LoadResult", "LOADERS", "OnPage", "SUPPORTED_SUFFIXES", "TextBuilder", "decode",
    "file_stat", "is_supported", "iter_files", "load_corpus", "load_file", "parse_file",
    "read_corpus",
    "read_file", "skip", "title_from_filename",
]  # fmt: skip

log = logging.getLogger(__name__)

OnPage = Callable[[str, int, int], None]  # (file, pages recognised, pages to recognise)


@dataclass
class LoadResult:
    """Documents loaded from a corpus, plus the files skipped and why."""

    documents: list[Document]
    skipped: list[tuple[str, str]]
    # size and mtime_ns of skipped files of a supported type, taken before the read was tried,
    # so that a staleness check can tell when such a file was edited (and may load now)
    skipped_stats: dict[str, dict] = field(default_factory=dict)


def is_supported(path: str | os.PathLike) -> bool:
    """Whether the loaders read files of this type (by suffix)."""
    return Path(path).suffix.lower() in LOADERS


def load_file(root: Path, path: Path) -> Document:
    """Load one file under `root` with the loader for its suffix.

    The document's `metadata` records the file's "size" and "mtime_ns", taken before reading:
    if the file changes while it is read, the recorded mtime is the older one, and a staleness
    check hashes the file again instead of trusting it.

    Raises:
        ValueError: the file is unreadable, of an unsupported type, or cannot be decoded.
    """
    return parse_file(*read_file(root, path))


def read_file(root: Path, path: Path) -> tuple[str, bytes, dict]:
    """The raw bytes of one file under `root`, to parse with `parse_file` (perhaps elsewhere:
    a distributed build reads on the driver and parses on the workers).

    Returns:
        (path relative to `root`, the bytes, {"size", "mtime_ns"} taken before reading).

    Raises:
        ValueError: the file is unreadable or of an unsupported type.
    """
    rel = path.relative_to(root).as_posix()
    if path.suffix.lower() not in LOADERS:
        raise ValueError(f"unsupported file type {path.suffix or '(none)'}")
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            data = fh.read()
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from None
    return rel, data, {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def parse_file(rel: str, data: bytes, stat: dict,
               on_page: OnPage | None = None) -> Document:  # fmt: skip
    """The `Document` of a file read by `read_file`: kept from an earlier read of the same
    bytes (`cache.py`), else read within the limits of `sandbox.py` (and kept).

    Args:
        rel, data, stat: as `read_file` returns them.
        on_page: called with (rel, done, total) as pages are recognised (OCR).

    Raises:
        ValueError: the file cannot be read, or went past a reading limit (the reason says).
    """
    key = cache.key(rel, data)
    document = cache.get(key, rel)
    if document is None:
        progress = (lambda done, total: on_page(rel, done, total)) if on_page else None
        document = sandbox.parse(rel, data, progress, _limits())
        cache.put(key, document)
    else:
        log.debug("%s: text kept from an earlier read", rel)
    return dataclasses.replace(document, metadata={**document.metadata, **stat})


def _limits() -> sandbox.Limits:
    """The configured reading limits.

    Raises:
        UsageError: $QA_PARSE_SECONDS or $QA_PARSE_MB is not a positive number.
    """
    try:
        return sandbox.Limits.configured()
    except ValueError as exc:
        raise UsageError(str(exc), "give a positive number, or unset it for the default") \
            from None


def is_index_folder(path: Path) -> bool:
    """Whether `path` is a `qa` index folder (`qa.store.folder`: a `builds` folder and the
    `current` pointer): one inside the corpus (`qa build --corpus . --index index`) holds the
    index's own files, never documents."""
    try:
        return (path / "builds").is_dir() and os.path.lexists(path / "current")
    except OSError:  # an unreadable folder: the walk names it as such
        return False


LINK_LOOP = "symbolic link loop"
BROKEN_LINK = "broken symbolic link"
LINK_OUTSIDE = ("symbolic link leading outside the corpus folder (not followed; "
                "--follow-symlinks or QA_FOLLOW_SYMLINKS=1 follows it)")  # fmt: skip
LINKED_FOLDER = ("symbolic link to a folder in the corpus folder (its files are read there; "
                 "--follow-symlinks or QA_FOLLOW_SYMLINKS=1 follows it)")  # fmt: skip


def iter_files(root: Path, skipped: list[tuple[str, str]] | None = None,
               follow_links: bool | None = None) -> list[Path]:  # fmt: skip
    """Every file under `root`, recursively, sorted by relative path (hidden entries and index
    folders skipped).

    Symbolic links: a link to a file inside `root` is listed (under its own path); a link that
    leads outside `root`, a linked folder, a broken link and a loop are not, and are added to
    `skipped` with the reason. With `follow_links` (default: `config.follow_symlinks()`), links
    outside are listed and linked folders walked too; loops and broken links never are.

    Sub-folders that cannot be read are left out and added to `skipped` as (path, reason).

    Raises:
        QAError: `root` itself cannot be read.
    """
    follow = config.follow_symlinks(follow_links)
    real_root = root.resolve()
    found: list[Path] = []
    errors: list[OSError] = []
    links: list[tuple[str, str]] = []  # (path as skipped: a folder ends in "/", reason)
    for dirpath, dirnames, filenames in os.walk(root, onerror=errors.append, followlinks=follow):
        here = Path(dirpath)
        kept = []
        for d in sorted(dirnames):
            path = here / d
            if d.startswith(".") or is_index_folder(path):
                continue
            reason = _link_reason(path, root, real_root, follow, folder=True)
            if reason:
                links.append((path.relative_to(root).as_posix() + "/", reason))
            else:
                kept.append(d)
        dirnames[:] = kept
        for f in filenames:
            if not f.startswith("."):
                reason = _link_reason(here / f, root, real_root, follow)
                if reason:
                    links.append(((here / f).relative_to(root).as_posix(), reason))
                else:
                    found.append(here / f)
    for exc in errors:
        folder = Path(exc.filename) if exc.filename else root
        if folder == root:
            raise QAError(
                f"cannot read corpus folder {root}: {exc.strerror or exc}",
                "check that the folder exists and that you may read it",
            )
        rel = folder.relative_to(root).as_posix() + "/"
        log.debug("cannot read folder %s: %s", folder, exc.strerror)
        if skipped is not None:
            skipped.append((rel, f"folder not readable: {exc.strerror or exc}"))
    for rel, reason in links:
        log.debug("skipped %s: %s", rel, reason)
        if skipped is not None:
            skipped.append((rel, reason))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _link_reason(path: Path, root: Path, real_root: Path, follow: bool,
                 folder: bool = False) -> str | None:  # fmt: skip
    """Why a walk does not take `path` (None: it does): a symbolic link that is broken, a loop,
    leads outside the corpus folder, or (not followed) to a folder; see `iter_files`."""
    if not path.is_symlink():
        return None
    try:
        target = path.resolve(strict=True)
    except FileNotFoundError:
        return BROKEN_LINK
    except (OSError, RuntimeError):  # ELOOP; RuntimeError: a loop, as Python < 3.13 says it
        return LINK_LOOP
    if folder:
        rel = path.parent.relative_to(root).parts  # the folders walked to get here, by name
        walked = {root.joinpath(*rel[:i]).resolve() for i in range(len(rel) + 1)}
        if target in walked:  # a folder it lies in: walking it would never end
            return LINK_LOOP
    if not follow and target != real_root and real_root not in target.parents:
        return LINK_OUTSIDE
    return LINKED_FOLDER if folder and not follow else None


def file_stat(path: Path) -> dict:
    """The "size" and "mtime_ns" of a file; of the link itself for a symbolic link that leads
    nowhere, so that a staleness check sees such a link unchanged until it is mended.

    Raises:
        OSError: neither can be read.
    """
    try:
        st = path.stat()
    except OSError:
        st = path.lstat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size < 1e9 else f"{size / 1e9:.1f} GB"


def read_corpus(root: Path, result: LoadResult, max_bytes: int | None = None,
                follow_links: bool | None = None) -> Iterator[tuple[str, bytes, dict]]:  # fmt: skip
    """Every file under `root` read with `read_file`, lazily, in a stable (sorted) order.

    Files that cannot be read (unsupported, unreadable, not a regular file, over `max_bytes`:
    None means `config.max_file_bytes()`, 0 no limit), symbolic links that are not followed
    (see `iter_files`, which `follow_links` goes to) and sub-folders that cannot be read are
    added to `result.skipped` (unsorted) with a reason, and for files of a
    supported type their size and mtime in `result.skipped_stats`, until they are parsed (see
    `LoadResult`).

    Raises:
        QAError: the folder cannot be read.
    """
    limit = config.max_file_bytes() if max_bytes is None else max_bytes
    for path in iter_files(root, result.skipped, follow_links):
        rel = path.relative_to(root).as_posix()
        try:
            if is_supported(path):
                result.skipped_stats[rel] = file_stat(path)
                if not path.exists():  # (broken since the walk)
                    raise ValueError(BROKEN_LINK)
                if not path.is_file():  # a named pipe would block the read for ever
                    raise ValueError("not a regular file")
                size = result.skipped_stats[rel]["size"]
                if limit and size > limit:
                    raise ValueError(f"{_megabytes(size)}, over the limit of {_megabytes(limit)} "
                                     "per file set by --max-file-mb or QA_MAX_FILE_MB")
            item = read_file(root, path)
        except (OSError, ValueError) as exc:
            skip(result, rel, exc)
            continue
        yield item


def skip(result: LoadResult, rel: str, exc: Exception) -> None:
    """Record a file that was not loaded, with the reason."""
    reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
    log.debug("skipped %s: %s", rel, reason)  # callers report LoadResult.skipped
    result.skipped.append((rel, reason))


def require_corpus(root: Path) -> Path:
    """`root`, when it is a folder (a build checks it before taking the lock, which creates
    the index folder).

    Raises:
        QAError: it does not exist, or is a file.
    """
    if root.is_dir():
        return root
    if root.exists():
        raise QAError(f"the corpus {root} is not a folder",
                      "give the folder that holds the documents with --corpus or QA_CORPUS")
    raise QAError(f"no corpus folder at {root}",
                  "create it and put documents in it (.txt, .md, .html, .pdf, .docx, ...)")


def load_corpus(root: str | os.PathLike, max_bytes: int | None = None,
                follow_links: bool | None = None,
                on_page: OnPage | None = None) -> LoadResult:  # fmt: skip
    """Load every supported document under `root`, in a stable (sorted) order.

    Unsupported, unreadable, binary or undecodable files, symbolic links that are broken, loop
    or lead outside `root` (see `iter_files`), files larger than `max_bytes`, and sub-folders
    that cannot be read, are skipped and listed in `LoadResult.skipped` (sorted by path) with a
    reason; they never stop the load.

    Args:
        root: the corpus folder.
        max_bytes: the largest file to read; None means `config.max_file_bytes()` ($QA_MAX_FILE_MB
            or the default), 0 means no limit.
        follow_links: read links leading outside `root`, and walk linked folders (default:
            `config.follow_symlinks()`).
        on_page: called with (file, done, total) as the pages of a scan are recognised.

    Raises:
        QAError: the folder does not exist or cannot be read, or a reading limit is not a
            number.
    """
    root = require_corpus(Path(root))
    _limits()  # a bad limit is an error of the build, before any file is read
    result = LoadResult([], [])
    for rel, data, stat in read_corpus(root, result, max_bytes, follow_links):
        try:
            result.documents.append(parse_file(rel, data, stat, on_page))
            result.skipped_stats.pop(rel, None)
        except (OSError, ValueError) as exc:
            skip(result, rel, exc)
    result.skipped.sort()
    return result
