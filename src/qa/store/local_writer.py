"""Writing one build of the local store: batches in, files flushed, then one atomic switch."""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from qa.errors import QAError
from qa.ingest import sentences
from qa.ingest.terms import passage_text
from qa.store import bm25
from qa.store.base import Batch
from qa.store.files import fsync_dir, sha256_file, write_array, write_file
from qa.store.folder import BUILDS, MANIFEST, current_build, switch
from qa.store.local_generation import CHUNKS, DENSE, VECTORS
from qa.store.manifest import seal

log = logging.getLogger(__name__)


class LocalWriter:
    """A build being written into `builds/<id>.tmp` of an index folder.

    Chunks stream to disk as batches arrive; vectors are kept until `commit`, since the FAISS
    index is built over all of them at once. The caller holds the folder's lock.
    """

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self.live = current_build(index_dir)  # whose FAISS index a build of equal vectors copies
        builds = index_dir / BUILDS
        builds.mkdir(parents=True, exist_ok=True)
        self.build_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        self.tmp = builds / f"{self.build_id}.tmp"
        self.tmp.mkdir()
        self._chunks = open(self.tmp / CHUNKS, "wb")  # noqa: SIM115 - closed by commit/discard
        self._vectors: list[np.ndarray] = []
        self._sentence_vectors: list[np.ndarray] = []
        self._rows: list[tuple[int, int, int]] = []
        self._keys: list[str] = []
        self._lexical: list[str] = []
        self.committed: Path | None = None
        log.debug("writing build %s", self.tmp)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Say which index could not be written (a full disk, a file-size limit, permissions),
        instead of a bare "File too large" without a file name."""
        try:
            yield
        except OSError as exc:
            raise QAError(f"cannot write the index in {self.index_dir}: {exc.strerror or exc}",
                          "free some disk space or check the folder's permissions; the index "
                          "in use is unchanged") from exc  # fmt: skip

    def add(self, batch: Batch) -> None:
        """Append passages, in chunk-id order."""
        with self._writing():
            self._add(batch)

    def _add(self, batch: Batch) -> None:
        for chunk, title, spans in zip(batch.chunks, batch.titles, batch.spans, strict=True):
            if chunk.id != len(self._lexical):
                raise ValueError(f"chunk {chunk.id} out of order")
            self._chunks.write(json_bytes(chunk.to_dict()) + b"\n")
            self._rows.extend((chunk.id, s, e) for s, e in spans)
            self._lexical.append(passage_text(title or chunk.doc, chunk.section, chunk.text))
        self._keys.extend(batch.keys)
        self._vectors.append(np.asarray(batch.vectors, dtype=np.float32))
        self._sentence_vectors.append(np.asarray(batch.sentence_vectors, dtype=np.float32))

    def commit(self, manifest: dict) -> str:
        """Write vectors, sentence and BM25 arrays, FAISS index and manifest, flush them, and
        make the build live; returns its id."""
        with self._writing():
            return self._commit(manifest)

    def _commit(self, manifest: dict) -> str:
        from qa.store.faiss_index import make_index

        dim = manifest["model"]["dim"]
        vectors = np.concatenate([np.zeros((0, dim), np.float32), *self._vectors])
        table = np.array(self._rows, dtype=np.int32).reshape(-1, 3)
        arrays = {
            sentences.TABLE: table,
            sentences.VECTORS: np.concatenate(
                [np.zeros((0, dim), np.float32), *self._sentence_vectors]
            ),
            **bm25.LexicalIndex.build(self._lexical).to_arrays(),
        }
        if not (np.isfinite(vectors).all() and np.isfinite(arrays[sentences.VECTORS]).all()):
            raise ValueError("cannot write vectors that are not finite numbers")
        self._chunks.flush()
        self._chunks.close()
        write_array(self.tmp / VECTORS, vectors)
        for name, array in arrays.items():
            write_array(self.tmp / f"{name}.npy", array)
        request = manifest.get("index_request") or "auto"
        reuse = self._same_vectors(manifest, request)
        if reuse is not None:  # the same vectors: copy the FAISS index (IVF takes minutes)
            shutil.copyfile(reuse[0], self.tmp / DENSE)
            index_type = reuse[1]
        else:
            import faiss

            dense, index_type = make_index(vectors, request)
            write_file(self.tmp / DENSE, faiss.serialize_index(dense).tobytes())
        manifest = {
            **manifest,
            "chunks": len(self._keys),
            "keys": self._keys,
            "lexical": {"version": bm25.VERSION, "k1": bm25.K1, "b": bm25.B},
            "index_type": index_type,
            "arrays": sorted(arrays),
        }
        names = (CHUNKS, VECTORS, DENSE, *(f"{name}.npy" for name in sorted(arrays)))
        manifest["files"] = {name: sha256_file(self.tmp / name) for name in names}
        write_file(self.tmp / MANIFEST, json_bytes(seal(manifest), indent=2))
        fsync_dir(self.tmp)
        final = self.tmp.with_name(self.build_id)
        self.tmp.rename(final)
        fsync_dir(final.parent)
        self.committed = final
        switch(self.index_dir, final)
        return self.build_id

    def _same_vectors(self, manifest: dict, request: str) -> tuple[Path, str] | None:
        """The live build's FAISS file and kind when it indexes exactly these vectors."""
        if self.live is None:
            return None
        try:
            live = json.loads((self.live / MANIFEST).read_text(encoding="utf-8"))
            same = (
                live.get("keys") == self._keys
                and live.get("index_request", "auto") == request
                and live.get("qa_version") == manifest.get("qa_version")
                and live["files"][DENSE] == sha256_file(self.live / DENSE)
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return (self.live / DENSE, live["index_type"]) if same else None

    def discard(self) -> None:
        """Remove the unfinished build (nothing, once committed)."""
        if self.committed is None:
            try:
                self._chunks.close()
            except OSError:  # flushing what a full disk refused fails again: the folder goes
                pass
            shutil.rmtree(self.tmp, ignore_errors=True)  # clean_up catches what is left


def json_bytes(value: object, indent: int | None = None) -> bytes:
    """`value` as UTF-8 JSON; text that cannot be UTF-8 (a lone surrogate: a file name that
    was not UTF-8) is written as an escape instead, so the file always reads back."""
    try:
        return json.dumps(value, ensure_ascii=False, indent=indent).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, indent=indent).encode("ascii")
