"""The local store: an index folder of immutable builds (see `qa.store.folder` for the layout)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from qa.errors import REBUILD_HINT, IndexCorruptError, QAError
from qa.store.folder import (
    READ_RETRIES,
    clean_up,
    current_build,
    current_name,
    existing,
    lock,
    read_manifest,
    read_only,
    remove_new,
)
from qa.store.local_generation import LocalGeneration
from qa.store.local_writer import LocalWriter

log = logging.getLogger(__name__)


class LocalStore:
    """An index folder (see the module text).

    Args:
        path: the index folder; created by the first build.
    """

    shared = False  # one machine's folder: the page may rebuild it

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.location = str(self.path)

    def current(self) -> str | None:
        """The live build's folder name, or None."""
        return current_name(self.path)

    def manifest(self) -> dict:
        """The live build's manifest (no other file is read)."""
        return read_manifest(self.path)[1]

    def read_only(self) -> str:
        """Why a build could not write this index folder, in words ("" when it can)."""
        return read_only(self.path)

    def verify(self) -> str:
        """See `Store.verify`: loading a build checks every file against its checksum."""
        self.open()
        return "every file matches its checksum and the manifest"

    def open(self) -> LocalGeneration:
        """The live build, verified and loaded. A build that goes live while this reads (and
        removes the build being read) makes it start again on the new build."""
        for _attempt in range(READ_RETRIES):
            build = None
            try:
                build, manifest = read_manifest(self.path)
                return LocalGeneration.load(build, manifest)
            except (FileNotFoundError, IndexCorruptError) as exc:
                if build is not None and current_build(self.path) != build:
                    log.debug("index switched while loading %s; reading it again", build)
                    continue
                if isinstance(exc, IndexCorruptError):
                    raise
                raise IndexCorruptError(
                    f"index files under {build or self.path} are missing",
                    REBUILD_HINT,
                ) from None
        raise IndexCorruptError(
            f"index at {self.path} kept changing while being read", "try again in a moment"
        )

    @contextmanager
    def lock(self, wait: bool = False) -> Iterator[None]:
        """Hold the folder's build lock, after removing what a killed build left behind. A
        build that fails inside leaves nothing new: the folder, `builds/` and the lock file
        are removed again when this made them (and they are empty)."""
        existed = existing(self.path)
        file_lock = lock(self.path, timeout=-1 if wait else 0)
        try:
            clean_up(self.path)
            yield
        except BaseException:
            remove_new(self.path, existed)
            raise
        finally:
            file_lock.release()

    def reusable(self, keys: Sequence[str], vector_space: str, dim: int) -> Iterator[tuple]:
        """(key, vector, sentence vectors) of live passages with these keys (see `Store`)."""
        try:
            live = self.open()
        except QAError as exc:
            log.debug("no vectors to reuse: %s", exc)
            return
        yield from live.reusable(set(keys), vector_space, dim)

    @contextmanager
    def writer(self) -> Iterator[LocalWriter]:
        """A new build folder to write; removed again unless committed (which switches to it)."""
        writer = LocalWriter(self.path)
        try:
            yield writer
        finally:
            writer.discard()
