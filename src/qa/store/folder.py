"""The local store: an index folder of immutable builds, switched atomically.

Layout (see index/README.md)::

    index/current -> builds/<id>       symbolic link to the live build, swapped atomically
    index/builds/<id>/manifest.json    what was built, from what, how; checksums of the files
                                       and of itself (`qa.store.manifest`)
    index/builds/<id>/chunks.jsonl     one passage per line
    index/builds/<id>/vectors.npy      float32 embeddings (numpy format, never pickled)
    index/builds/<id>/dense.faiss      the FAISS index over the vectors
    index/builds/<id>/<name>.npy       further arrays (sentence vectors, BM25), listed under
                                       "arrays" in the manifest

A build is written into `builds/<id>.tmp`, flushed to disk, renamed to `builds/<id>` and only
then made live by replacing the `current` link in one rename. A build killed at any moment
leaves the previous index as it was; the next build removes what the killed one left.
Nothing here is unpickled or executed, and checksums are verified before anything is parsed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from qa.errors import REBUILD_HINT, IndexCorruptError, QAError
from qa.store import manifest as manifests
from qa.store.base import missing_index
from qa.store.files import can_write, fsync_dir, reason

CURRENT = "current"
BUILDS = "builds"  # (with CURRENT, how `qa.ingest.loaders.is_index_folder` knows an index)
MANIFEST = "manifest.json"
LOCK = ".lock"
READ_RETRIES = 3

log = logging.getLogger(__name__)


def switch(index_dir: Path, build: Path) -> None:
    """Make a complete build folder the live one: replace the `current` link in one rename."""
    link_tmp = index_dir / f".{CURRENT}.{build.name}"
    os.symlink(Path(BUILDS) / build.name, link_tmp)
    os.replace(link_tmp, index_dir / CURRENT)  # the atomic switch
    fsync_dir(index_dir)
    log.debug("build %s is live", build)
    clean_up(index_dir)


def clean_up(index_dir: Path) -> list[Path]:
    """Remove builds that are not live and whatever interrupted builds left behind.

    Call it only while holding the lock. Searchers that already loaded an older build keep it
    in memory; `LocalStore.open` retries if a build disappears while it is being read.

    Returns:
        What was removed.
    """
    live = current_build(index_dir)
    removed: list[Path] = []
    builds = index_dir / BUILDS
    if builds.is_dir():
        for entry in builds.iterdir():
            if live is None or entry.resolve() != live:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry)
    for entry in index_dir.glob(f".{CURRENT}.*"):
        entry.unlink(missing_ok=True)
        removed.append(entry)
    if removed:
        log.debug("cleaned up %s", ", ".join(p.name for p in removed))
    return removed


def current_build(index_dir: Path) -> Path | None:
    """The live build folder (resolved), or None when there is none.

    Raises:
        QAError: the index folder cannot be read.
    """
    link = Path(index_dir) / CURRENT
    try:
        if not link.exists():
            return None
        return link.resolve()
    except OSError as exc:
        raise QAError(
            f"cannot read index folder {index_dir}: {exc.strerror or exc}",
            "check that the folder exists and that you may read it",
        ) from None


def current_name(index_dir: Path) -> str | None:
    """The live build's folder name, or None: `current_build(index_dir).name`, read with two
    system calls instead of a walk of the whole path (it is asked before every answer of
    `qa serve` and the page, to follow new builds).

    Raises:
        QAError: the index folder cannot be read.
    """
    link = os.path.join(index_dir, CURRENT)
    try:
        target = os.readlink(link)
        live = os.path.exists(link)  # (the link's build is there)
    except FileNotFoundError:
        return None
    except OSError:  # not a link, or not readable: the long way, which says why
        build = current_build(Path(index_dir))
        return None if build is None else build.name
    return os.path.basename(os.path.normpath(target)) if live else None


def read_manifest(index_dir: Path) -> tuple[Path, dict]:
    """The live build folder and its manifest (no other file is read).

    Raises:
        IndexMissingError: no index has been built there.
        IndexCorruptError: the manifest cannot be read, is of another format, or fails its
            schema or checksum (`qa.store.manifest.check`).
    """
    index_dir = Path(index_dir)
    for _attempt in range(READ_RETRIES):
        build = current_build(index_dir)
        if build is None or not (build / MANIFEST).is_file():
            raise missing_index(index_dir)
        try:
            text = (build / MANIFEST).read_text(encoding="utf-8")
            break
        except FileNotFoundError:  # a build swapped the index and removed this one meanwhile
            continue
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(
                f"index manifest at {build} is unreadable ({reason(exc)})",
                REBUILD_HINT,
            ) from None
    else:
        raise IndexCorruptError(
            f"index at {index_dir} kept changing while being read", "try again in a moment"
        )
    try:
        manifest = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to parse
        raise IndexCorruptError(
            f"index manifest at {build} is unreadable ({reason(exc)})",
            REBUILD_HINT,
        ) from None
    manifests.check(manifest, str(index_dir))
    if "files" not in manifest:  # the checksums this store always writes
        raise IndexCorruptError(
            f"index manifest at {build} is incomplete", REBUILD_HINT
        )
    return build, manifest


def remove_new(index_dir: Path, existed: set[str]) -> None:
    """Remove what taking the lock created (the folder, `builds/`, the lock file) but not the
    names in `existed`; folders only when empty. For a build that failed: it leaves nothing new.
    Call it while holding the lock (a build waiting on the removed lock file takes a new one)."""
    if LOCK not in existed:
        (index_dir / LOCK).unlink(missing_ok=True)
    for folder, name in ((index_dir / BUILDS, BUILDS), (index_dir, "")):
        if name not in existed:
            try:
                folder.rmdir()
            except OSError:  # not empty (or gone): keep it
                pass


def read_only(index_dir: Path) -> str:
    """Why a build could not write the index folder, in words ("" when it can): the folder,
    `builds/` and the lock file must all be writable (made where they are missing)."""
    index_dir = Path(index_dir)
    for path in (index_dir, index_dir / BUILDS, index_dir / LOCK):
        if not can_write(path):
            return f"the index folder {index_dir} is read-only"
    return ""


def existing(index_dir: Path) -> set[str]:
    """Which of the index folder (""), `builds/` and the lock file exist now."""
    names = ("", BUILDS, LOCK)
    return {name for name in names if os.path.lexists(index_dir / name)}


def lock(index_dir: Path, timeout: float = 0):
    """An exclusive lock on the index folder for a build (an acquired filelock.FileLock).

    The lock is an OS file lock: a killed build releases it with its process.

    Args:
        index_dir: the index folder (created if needed).
        timeout: seconds to wait for another build; 0 fails at once, -1 waits for ever.

    Raises:
        QAError: another build holds the lock (after waiting `timeout` seconds).
    """
    from filelock import FileLock, Timeout

    index_dir = Path(index_dir)
    if index_dir.exists() and not index_dir.is_dir():
        raise QAError(f"the index {index_dir} is not a folder",
                      "give a folder for the index with --index or QA_INDEX; qa creates it")
    index_dir.mkdir(parents=True, exist_ok=True)
    file_lock = FileLock(str(index_dir / LOCK))
    try:
        file_lock.acquire(timeout=0)
    except Timeout:
        if timeout == 0:
            raise QAError(
                f"another `qa build` is running on {index_dir}",
                "wait for it to finish, or use --wait to queue behind it",
            ) from None
        log.warning("waiting for another `qa build` on %s to finish", index_dir)
        try:
            file_lock.acquire(timeout=timeout)
        except Timeout:
            raise QAError(
                f"another `qa build` on {index_dir} did not finish within {timeout:g}s",
                "try again when it has finished",
            ) from None
    log.debug("lock taken on %s", index_dir)
    return file_lock
