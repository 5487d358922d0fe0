"""One build of the local store, loaded: checksums verified, then searched in memory.

Dense search goes through FAISS (`qa.store.faiss_index`); lexical search through the stored
BM25 arrays (`qa.store.bm25`); a document filter is a boolean mask over chunk ids, applied
before ranking (exact search over the allowed vectors), so a filtered search still returns
n passages when the chosen documents have n.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from qa.errors import IndexCorruptError
from qa.ingest import sentences
from qa.ingest.chunking import Chunk
from qa.ingest.terms import passage_text
from qa.store import bm25, faiss_index
from qa.store.base import Docs, LexicalHits, Passages, gather_rows
from qa.store.files import reason, sha256_file
from qa.store.manifest import titles as manifest_titles

CHUNKS = "chunks.jsonl"
VECTORS = "vectors.npy"
DENSE = "dense.faiss"
POOLED = "pooled"  # sentence vectors pooled from the passage's own pass (see qa.build)
_MASKS = 64  # document filters remembered per build


class LocalGeneration:
    """A loaded build (see `qa.store.base.Generation` for the methods' contracts)."""

    def __init__(self, path: Path, manifest: dict, chunks: list[Chunk], vectors: np.ndarray,
                 dense, arrays: dict[str, np.ndarray]) -> None:  # fmt: skip
        self.path, self.id, self.manifest = path, path.name, manifest
        self.chunks, self.vectors, self.dense_index, self.arrays = chunks, vectors, dense, arrays
        self.size = len(chunks)
        self.titles = manifest_titles(manifest)
        table, sentence_vectors = arrays.get(sentences.TABLE), arrays.get(sentences.VECTORS)
        if table is None or sentence_vectors is None or len(table) != len(sentence_vectors):
            table = np.zeros((0, 3), np.int32)  # a build without sentence vectors
            sentence_vectors = np.zeros((0, vectors.shape[1]), np.float32)
        order = np.argsort(table[:, 0], kind="stable")
        self.table, self.sentence_vectors = table[order], sentence_vectors[order]
        self.bounds = sentences.rows_per_chunk(self.table, self.size)
        self._lock = threading.Lock()
        self._bm25: bm25.LexicalIndex | None = None
        self._masks: dict[tuple[str, ...], np.ndarray] = {}

    @classmethod
    def load(cls, build: Path, manifest: dict) -> LocalGeneration:
        """Verify every file's checksum, then read chunks, vectors, arrays and FAISS index.

        Raises:
            FileNotFoundError: a file vanished (the build was replaced meanwhile).
            IndexCorruptError: a damaged or inconsistent build.
        """
        import faiss

        try:
            names = _array_names(manifest)
            _verify(build, manifest, names)
            with open(build / CHUNKS, encoding="utf-8") as fh:
                chunks = [Chunk(**json.loads(line)) for line in fh if line.strip()]
            vectors = np.load(build / VECTORS, allow_pickle=False)
            arrays = {name: np.load(build / f"{name}.npy", allow_pickle=False) for name in names}
            dense = faiss.deserialize_index(np.fromfile(build / DENSE, dtype=np.uint8))
        except FileNotFoundError:
            raise
        except (OSError, ValueError, TypeError, RuntimeError) as exc:
            raise IndexCorruptError(
                f"index at {build} cannot be read ({reason(exc)})",
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
        return cls(build, manifest, chunks, vectors, dense, arrays)

    def mask(self, docs: Docs) -> np.ndarray | None:
        """Boolean mask over chunk ids of the allowed documents (None: all)."""
        if docs is None:
            return None
        key = tuple(docs)
        with self._lock:
            if key not in self._masks:
                if len(self._masks) >= _MASKS:
                    self._masks.clear()
                allowed = set(key)
                self._masks[key] = np.fromiter((c.doc in allowed for c in self.chunks), bool,
                                               count=self.size)
            return self._masks[key]

    def dense(self, query: np.ndarray, n: int, docs: Docs = None) -> tuple[np.ndarray, np.ndarray]:
        mask = self.mask(docs)
        if mask is None:
            scores, ids = faiss_index.search(self.dense_index, query[None, :], min(n, self.size))
            keep = ids[0] >= 0
            return ids[0][keep].astype(np.int64), scores[0][keep]
        allowed = np.flatnonzero(mask)
        scores = self.vectors[allowed] @ query
        top = top_k(scores, n)
        return allowed[top], scores[top]

    def lexical_index(self) -> bm25.LexicalIndex:
        """The BM25 index: as stored with the build, else computed once on first use."""
        with self._lock:
            if self._bm25 is None:
                if (self.manifest.get("lexical") or {}).get("version") == bm25.VERSION:
                    self._bm25 = bm25.LexicalIndex.from_arrays(self.arrays, self.size)
                if self._bm25 is None:
                    self._bm25 = bm25.LexicalIndex.build([
                        passage_text(self.titles.get(c.doc) or c.doc, c.section, c.text)
                        for c in self.chunks
                    ])  # fmt: skip
            return self._bm25

    def lexical(self, terms: Sequence[str], n: int, docs: Docs = None,
                also: np.ndarray | None = None) -> LexicalHits:  # fmt: skip
        scores = self.lexical_index().scores(terms)
        mask = self.mask(docs)
        if mask is not None:
            scores[~mask] = 0.0
        matched = np.flatnonzero(scores > 0)
        top = matched[top_k(scores[matched], n)]
        extra = scores[np.asarray(also, dtype=np.int64)] if also is not None else scores[:0]
        return LexicalHits(top, scores[top], extra)

    def term_frequencies(self, terms: Sequence[str]) -> np.ndarray:
        return self.lexical_index().frequencies(terms)

    def passages(self, ids: Sequence[int] | np.ndarray) -> Passages:
        ids = np.asarray(ids, dtype=np.int64)
        rows, bounds = gather_rows(self.bounds, ids)
        chunks = [self.chunks[i] for i in ids]
        return Passages(
            ids, chunks, [self.titles.get(c.doc, c.doc) for c in chunks], self.vectors[ids],
            bounds, self.table[rows, 1:], self.sentence_vectors[rows],
        )  # fmt: skip

    def reusable(self, keys: set[str], vector_space: str, dim: int) -> Iterator[tuple]:
        """(key, vector, sentence vectors) of passages with these keys, when this build was
        embedded in `vector_space` with sentence vectors pooled from the passage."""
        from qa.embed.models import vector_id

        model = self.manifest["model"]
        stored = self.manifest.get("keys") or []
        if (
            vector_id(model["id"], model.get("backend", "torch")) != vector_space
            or model["dim"] != dim
            or len(stored) != self.size
            or self.manifest.get("sentence_vectors") != POOLED
        ):
            return
        for i, key in enumerate(stored):
            if key in keys:
                rows = slice(int(self.bounds[i]), int(self.bounds[i + 1]))
                yield key, self.vectors[i], self.sentence_vectors[rows]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores, best first, ties in position order: what a stable
    sort of all scores gives, without sorting them all (tens of thousands per question)."""
    if len(scores) > k > 0:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]  # the k-th highest score
        candidates = np.flatnonzero(scores >= kth)
    else:
        candidates = np.arange(len(scores))
    return candidates[np.lexsort((candidates, -scores[candidates]))][:k]


def _array_names(manifest: dict) -> list[str]:
    """The further arrays a manifest lists."""
    names = manifest.get("arrays") or []
    if not isinstance(names, list) or not all(
        isinstance(n, str) and n.isidentifier() for n in names
    ):
        raise IndexCorruptError(
            "index manifest lists malformed arrays", "run `qa build` to rebuild the index"
        )
    return names


def _verify(build: Path, manifest: dict, names: list[str]) -> None:
    """Check every data file against the manifest's sha256 before anything parses it."""
    files = manifest["files"]
    for name in (CHUNKS, VECTORS, DENSE, *(f"{n}.npy" for n in names)):
        path = build / name
        if name not in files or sha256_file(path) != files[name]:  # FileNotFoundError: retried
            raise IndexCorruptError(
                f"index file {path} is damaged (checksum mismatch)",
                "run `qa build` to rebuild the index",
            )
