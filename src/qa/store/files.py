"""Durable file writes and checksums for the local store (flushed to disk before a switch)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (renames, new files) to disk."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - not supported everywhere
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes) -> None:
    """Write bytes and flush them to disk."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_array(path: Path, array: np.ndarray) -> None:
    """Save an array in numpy's format (never pickled) and flush it to disk."""
    with open(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())


def can_write(path: Path) -> bool:
    """Whether `path` may be written: a folder to add entries to, or a file to write; when it
    does not exist yet, the nearest folder above it (where it would be made)."""
    path = Path(path).absolute()
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return os.access(path, os.W_OK | (os.X_OK if path.is_dir() else 0))


def reason(exc: BaseException) -> str:
    """A short cause for an error message: the OS's words, else the exception's class."""
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else exc.__class__.__name__
