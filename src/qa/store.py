"""The index folder: FAISS vectors, chunk table and manifest, written and switched atomically.

Layout (see index/README.md)::

    index/current -> builds/<id>       symbolic link to the live build, swapped atomically
    index/builds/<id>/manifest.json    what was built, from what, how; checksums of the files
    index/builds/<id>/chunks.jsonl     one passage per line
    index/builds/<id>/vectors.npy      float32 embeddings (numpy format, never pickled)
    index/builds/<id>/dense.faiss      the FAISS index over the vectors

A build is written into `builds/<id>.tmp`, flushed to disk, renamed to `builds/<id>` and only
then made live by replacing the `current` link in one rename. A build killed at any moment
leaves the previous index as it was; the next build removes what the killed one left.
Nothing here is unpickled or executed, and checksums are verified before anything is parsed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.chunking import Chunk
from qa.errors import IndexCorruptError, IndexMissingError, QAError

FORMAT_VERSION = 1
CURRENT = "current"
BUILDS = "builds"
MANIFEST = "manifest.json"
CHUNKS = "chunks.jsonl"
VECTORS = "vectors.npy"
DENSE = "dense.faiss"
LOCK = ".lock"


@dataclass
class StoredIndex:
    """An index as loaded from disk."""

    path: Path  # the build folder
    manifest: dict
    chunks: list[Chunk]
    vectors: np.ndarray
    dense: object  # faiss.Index


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


def write_build(index_dir: Path, manifest: dict, chunks: list[Chunk], vectors: np.ndarray) -> Path:
    """Write a complete build and make it the live index in one atomic step.

    Args:
        index_dir: the index folder (created if needed).
        manifest: build description; file checksums and the format version are added here.
        chunks: the chunk table.
        vectors: float32 array, one normalised row per chunk.

    Returns:
        The new build folder.
    """
    import faiss

    from qa.vector_index import make_index

    builds = index_dir / BUILDS
    builds.mkdir(parents=True, exist_ok=True)
    build_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
    tmp = builds / f"{build_id}.tmp"
    tmp.mkdir()

    _write_file(tmp / CHUNKS, chunks_to_jsonl(chunks))
    with open(tmp / VECTORS, "wb") as fh:
        np.save(fh, np.ascontiguousarray(vectors, dtype=np.float32), allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    dense, index_type = make_index(vectors, manifest.get("index_type"))
    _write_file(tmp / DENSE, faiss.serialize_index(dense).tobytes())

    manifest = dict(manifest)
    manifest["format"] = FORMAT_VERSION
    manifest["index_type"] = index_type
    manifest["files"] = {name: sha256_file(tmp / name) for name in (CHUNKS, VECTORS, DENSE)}
    _write_file(tmp / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False).encode())
    _fsync_dir(tmp)

    final = builds / build_id
    os.rename(tmp, final)
    _fsync_dir(builds)
    link_tmp = index_dir / f".{CURRENT}.{uuid.uuid4().hex[:8]}"
    os.symlink(Path(BUILDS) / build_id, link_tmp)
    os.replace(link_tmp, index_dir / CURRENT)  # the atomic switch
    _fsync_dir(index_dir)
    clean_up(index_dir)
    return final


def clean_up(index_dir: Path) -> None:
    """Remove builds that are not live and whatever interrupted builds left behind."""
    live = current_build(index_dir)
    builds = index_dir / BUILDS
    if builds.is_dir():
        for entry in builds.iterdir():
            if live is None or entry.resolve() != live.resolve():
                shutil.rmtree(entry, ignore_errors=True)
    for entry in index_dir.glob(f".{CURRENT}.*"):
        entry.unlink(missing_ok=True)


def current_build(index_dir: Path) -> Path | None:
    """The live build folder, or None when there is none."""
    link = index_dir / CURRENT
    if not link.exists():
        return None
    return link.resolve()


def read_manifest(index_dir: Path) -> tuple[Path, dict]:
    """The live build folder and its manifest (no other file is read).

    Raises:
        IndexMissingError: no index has been built there.
        IndexCorruptError: the manifest cannot be read or is of another format.
    """
    build = current_build(index_dir)
    if build is None or not (build / MANIFEST).is_file():
        raise IndexMissingError(f"no index at {index_dir}", "run `qa build` to create it")
    try:
        manifest = json.loads((build / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(
            f"index manifest at {build} is unreadable ({exc.__class__.__name__})",
            "run `qa build` to rebuild the index",
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        raise IndexCorruptError(
            f"index at {index_dir} has an unknown format",
            "run `qa build` to rebuild it with this version of qa",
        )
    return build, manifest


def _verify(build: Path, manifest: dict) -> None:
    files = manifest.get("files") or {}
    for name in (CHUNKS, VECTORS, DENSE):
        path = build / name
        if name not in files or not path.is_file() or sha256_file(path) != files[name]:
            raise IndexCorruptError(
                f"index file {path} is missing or damaged (checksum mismatch)",
                "run `qa build` to rebuild the index",
            )


def load(index_dir: str | os.PathLike) -> StoredIndex:
    """Load the live index: manifest, verified checksums, then chunks, vectors and FAISS index.

    Raises:
        IndexMissingError, IndexCorruptError: see `read_manifest`; also on checksum mismatch.
    """
    index_dir = Path(index_dir)
    for attempt in range(3):  # a build may swap the link between reading it and the files
        build, manifest = read_manifest(index_dir)
        try:
            return _load_build(build, manifest)
        except FileNotFoundError:
            if attempt == 2 or current_build(index_dir) == build:
                raise IndexCorruptError(
                    f"index files under {build} vanished", "run `qa build` to rebuild the index"
                ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _load_build(build: Path, manifest: dict) -> StoredIndex:
    import faiss

    _verify(build, manifest)
    try:
        with open(build / CHUNKS, encoding="utf-8") as fh:
            chunks = [Chunk(**json.loads(line)) for line in fh if line.strip()]
        vectors = np.load(build / VECTORS, allow_pickle=False)
        dense = faiss.deserialize_index(np.fromfile(build / DENSE, dtype=np.uint8))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, TypeError, RuntimeError) as exc:
        raise IndexCorruptError(
            f"index at {build} cannot be read ({exc.__class__.__name__})",
            "run `qa build` to rebuild the index",
        ) from None
    if len(chunks) != vectors.shape[0] or dense.ntotal != len(chunks):
        raise IndexCorruptError(
            f"index at {build} is inconsistent", "run `qa build` to rebuild the index"
        )
    return StoredIndex(build, manifest, chunks, vectors, dense)


def lock(index_dir: Path, timeout: float = 0):
    """An exclusive lock on the index folder for a build (a filelock.FileLock context).

    Raises:
        QAError: another build holds the lock (after waiting `timeout` seconds).
    """
    from filelock import FileLock, Timeout

    index_dir.mkdir(parents=True, exist_ok=True)
    file_lock = FileLock(str(index_dir / LOCK))
    try:
        file_lock.acquire(timeout=timeout)
    except Timeout:
        raise QAError(
            f"another `qa build` is running on {index_dir}",
            "wait for it to finish, or use --wait to queue behind it",
        ) from None
    return file_lock
