"""The index folder: FAISS vectors, chunk table and manifest, written and switched atomically.

Layout (see index/README.md)::

    index/current -> builds/<id>       symbolic link to the live build, swapped atomically
    index/builds/<id>/manifest.json    what was built, from what, how; checksums of the files
    index/builds/<id>/chunks.jsonl     one passage per line
    index/builds/<id>/vectors.npy      float32 embeddings (numpy format, never pickled)
    index/builds/<id>/dense.faiss      the FAISS index over the vectors
    index/builds/<id>/<name>.npy       further arrays a build adds (e.g. sentence vectors),
                                       listed under "arrays" in the manifest

A build is written into `builds/<id>.tmp`, flushed to disk, renamed to `builds/<id>` and only
then made live by replacing the `current` link in one rename. A build killed at any moment
leaves the previous index as it was; the next build removes what the killed one left.
Nothing here is unpickled or executed, and checksums are verified before anything is parsed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qa.errors import IndexCorruptError, IndexMissingError, QAError
from qa.ingest.chunking import Chunk

FORMAT_VERSION = 1
CURRENT = "current"
BUILDS = "builds"
MANIFEST = "manifest.json"
CHUNKS = "chunks.jsonl"
VECTORS = "vectors.npy"
DENSE = "dense.faiss"
LOCK = ".lock"
_READ_RETRIES = 3

log = logging.getLogger(__name__)


@dataclass
class StoredIndex:
    """An index as loaded from disk."""

    path: Path  # the build folder
    manifest: dict
    chunks: list[Chunk]
    vectors: np.ndarray
    dense: object  # faiss.Index
    titles: dict[str, str] = field(default_factory=dict)  # document path -> title
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # further arrays, by name


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - not supported everywhere
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def chunks_to_jsonl(chunks: list[Chunk]) -> bytes:
    lines = (json.dumps(c.to_dict(), ensure_ascii=False) for c in chunks)
    return ("\n".join(lines) + "\n").encode("utf-8") if chunks else b""


def _write_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())


def write_build(
    index_dir: Path,
    manifest: dict,
    chunks: list[Chunk],
    vectors: np.ndarray,
    arrays: dict[str, np.ndarray] | None = None,
    dense_from: tuple[Path, str] | None = None,
) -> Path:
    """Write a complete build and make it the live index in one atomic step.

    The caller holds `lock(index_dir)`. Files go to `builds/<id>.tmp`, are flushed to disk,
    the folder is renamed to `builds/<id>` and the `current` link is replaced in one rename.
    Killed before that rename, the previous index stays live; the next build removes the rest.

    Args:
        index_dir: the index folder (created if needed).
        manifest: build description; file checksums and the format version are added here.
        chunks: the chunk table.
        vectors: float32 array, one normalised row per chunk.
        arrays: further numeric arrays to keep with the build, by name (saved as <name>.npy,
            checksummed, loaded back into `StoredIndex.arrays`).
        dense_from: (FAISS index file, its kind) of a build with exactly these vectors, copied
            instead of building the index again (an IVF index over a million vectors takes
            minutes to train).

    Returns:
        The new build folder.
    """
    import faiss

    from qa.store.faiss_index import make_index

    builds = index_dir / BUILDS
    builds.mkdir(parents=True, exist_ok=True)
    build_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    tmp = builds / f"{build_id}.tmp"
    tmp.mkdir()
    log.debug("writing build %s", tmp)
    try:
        _write_file(tmp / CHUNKS, chunks_to_jsonl(chunks))
        _write_array(tmp / VECTORS, np.asarray(vectors, dtype=np.float32))
        arrays = arrays or {}
        for name, array in arrays.items():
            _write_array(tmp / f"{name}.npy", array)
        if dense_from is not None:
            shutil.copyfile(dense_from[0], tmp / DENSE)
            with open(tmp / DENSE, "rb") as fh:
                os.fsync(fh.fileno())
            index_type = dense_from[1]
        else:
            dense, index_type = make_index(vectors, manifest.get("index_type"))
            _write_file(tmp / DENSE, faiss.serialize_index(dense).tobytes())

        manifest = dict(manifest)
        manifest["format"] = FORMAT_VERSION
        manifest["index_type"] = index_type
        manifest["arrays"] = sorted(arrays)
        names = (CHUNKS, VECTORS, DENSE, *(f"{name}.npy" for name in sorted(arrays)))
        manifest["files"] = {name: sha256_file(tmp / name) for name in names}
        _write_file(tmp / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False).encode())
        _fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # best effort; clean_up catches what is left
        raise

    final = builds / build_id
    os.rename(tmp, final)
    _fsync_dir(builds)
    link_tmp = index_dir / f".{CURRENT}.{uuid.uuid4().hex[:8]}"
    os.symlink(Path(BUILDS) / build_id, link_tmp)
    os.replace(link_tmp, index_dir / CURRENT)  # the atomic switch
    _fsync_dir(index_dir)
    log.debug("build %s is live", final)
    clean_up(index_dir)
    return final


def clean_up(index_dir: Path) -> list[Path]:
    """Remove builds that are not live and whatever interrupted builds left behind.

    Call it only while holding `lock(index_dir)`. Searchers that already loaded an older build
    keep it in memory; `load` retries if a build disappears while it is being read.

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


def read_manifest(index_dir: Path) -> tuple[Path, dict]:
    """The live build folder and its manifest (no other file is read).

    Raises:
        IndexMissingError: no index has been built there.
        IndexCorruptError: the manifest cannot be read or is of another format.
    """
    index_dir = Path(index_dir)
    for _attempt in range(_READ_RETRIES):
        build = current_build(index_dir)
        if build is None or not (build / MANIFEST).is_file():
            raise IndexMissingError(f"no index at {index_dir}", "run `qa build` to create it")
        try:
            text = (build / MANIFEST).read_text(encoding="utf-8")
            break
        except FileNotFoundError:  # a build swapped the index and removed this one meanwhile
            continue
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(
                f"index manifest at {build} is unreadable ({_reason(exc)})",
                "run `qa build` to rebuild the index",
            ) from None
    else:
        raise IndexCorruptError(
            f"index at {index_dir} kept changing while being read", "try again in a moment"
        )
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise IndexCorruptError(
            f"index manifest at {build} is unreadable ({_reason(exc)})",
            "run `qa build` to rebuild the index",
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        raise IndexCorruptError(
            f"index at {index_dir} has an unknown format",
            "run `qa build` to rebuild it with this version of qa",
        )
    _check_manifest(build, manifest)
    return build, manifest


def _reason(exc: BaseException) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else exc.__class__.__name__


def _check_manifest(build: Path, manifest: dict) -> None:
    """The keys the rest of qa reads, with the right types (a hand-edited manifest is caught)."""
    try:
        ok = (
            isinstance(manifest["model"]["id"], str)
            and isinstance(manifest["model"]["dim"], int)
            and isinstance(manifest["chunks"], int)
            and isinstance(manifest["chunking"], dict)
            and isinstance(manifest["files"], dict)
            and all(isinstance(d["path"], str) for d in manifest["documents"])
        )
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise IndexCorruptError(
            f"index manifest at {build} is incomplete", "run `qa build` to rebuild the index"
        )


def _array_files(manifest: dict) -> list[str]:
    """File names of the further arrays a manifest lists."""
    names = manifest.get("arrays") or []
    if not isinstance(names, list) or not all(
        isinstance(n, str) and n.isidentifier() for n in names
    ):
        raise IndexCorruptError(
            "index manifest lists malformed arrays", "run `qa build` to rebuild the index"
        )
    return [f"{name}.npy" for name in names]


def _verify(build: Path, manifest: dict) -> None:
    """Check every data file against the manifest's sha256 before anything parses it."""
    files = manifest["files"]
    for name in (CHUNKS, VECTORS, DENSE, *_array_files(manifest)):
        path = build / name
        if name not in files or sha256_file(path) != files[name]:  # FileNotFoundError: retried
            raise IndexCorruptError(
                f"index file {path} is damaged (checksum mismatch)",
                "run `qa build` to rebuild the index",
            )


def load(index_dir: str | os.PathLike) -> StoredIndex:
    """Load the live index: manifest, verified checksums, then chunks, vectors and FAISS index.

    A build that goes live while this reads (and removes the build being read) makes it start
    again on the new build.

    Raises:
        IndexMissingError, IndexCorruptError: see `read_manifest`; also on checksum mismatch.
    """
    index_dir = Path(index_dir)
    for _attempt in range(_READ_RETRIES):
        build = None
        try:
            build, manifest = read_manifest(index_dir)
            return _load_build(build, manifest)
        except (FileNotFoundError, IndexCorruptError) as exc:
            if build is not None and current_build(index_dir) != build:
                log.debug("index switched while loading %s; reading it again", build)
                continue
            if isinstance(exc, IndexCorruptError):
                raise
            raise IndexCorruptError(
                f"index files under {build or index_dir} are missing",
                "run `qa build` to rebuild the index",
            ) from None
    raise IndexCorruptError(
        f"index at {index_dir} kept changing while being read", "try again in a moment"
    )


def _load_build(build: Path, manifest: dict) -> StoredIndex:
    import faiss

    try:
        _verify(build, manifest)
        with open(build / CHUNKS, encoding="utf-8") as fh:
            chunks = [Chunk(**json.loads(line)) for line in fh if line.strip()]
        vectors = np.load(build / VECTORS, allow_pickle=False)
        arrays = {
            name[: -len(".npy")]: np.load(build / name, allow_pickle=False)
            for name in _array_files(manifest)
        }
        dense = faiss.deserialize_index(np.fromfile(build / DENSE, dtype=np.uint8))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, TypeError, RuntimeError) as exc:
        raise IndexCorruptError(
            f"index at {build} cannot be read ({_reason(exc)})",
            "run `qa build` to rebuild the index",
        ) from None
    dim = manifest["model"]["dim"]
    if (
        len(chunks) != manifest["chunks"]
        or vectors.dtype != np.float32
        or vectors.shape != (len(chunks), dim)
        or dense.ntotal != len(chunks)
        or dense.d != dim
    ):
        raise IndexCorruptError(
            f"index at {build} is inconsistent (chunks, vectors and manifest disagree)",
            "run `qa build` to rebuild the index",
        )
    return StoredIndex(build, manifest, chunks, vectors, dense, arrays=arrays)


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
