"""One build of the local store, loaded: checksums verified, then searched in memory.

Loading checks, in order: every file's sha256 against the (checked) manifest; each array's
dtype and shape, read from its header through a memory map (`np.load(mmap_mode="r")`, so a
header that claims more rows than the file holds fails instead of allocating them); then the
contents against the manifest: one row per passage, sentence and BM25 indices in range, BM25
offsets in order, every vector and score finite. A damaged or inconsistent build is an
`IndexCorruptError`, never a wrong answer; questions then run without re-checking anything.

Dense search goes through FAISS (`qa.store.faiss_index`); lexical search through the stored
BM25 arrays (`qa.store.bm25`); a document filter is a boolean mask over chunk ids, applied
before ranking (exact search over the allowed vectors), so a filtered search still returns
n passages when the chosen documents have n. The arrays stay memory-mapped (the files of a
build are never changed once written; a new build writes a new folder).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

import numpy as np

from qa.errors import REBUILD_HINT, IndexCorruptError
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
        if len(table) > 1 and (np.diff(table[:, 0]) < 0).any():  # never, as builds write it
            order = np.argsort(table[:, 0], kind="stable")
            table, sentence_vectors = table[order], sentence_vectors[order]
        self.table, self.sentence_vectors = table, sentence_vectors  # memory-mapped, not copied
        self.bounds = sentences.rows_per_chunk(self.table, self.size)
        self._lock = threading.Lock()
        self._bm25: bm25.LexicalIndex | None = None
        self._masks: dict[tuple[str, ...], np.ndarray] = {}

    @classmethod
    def load(cls, build: Path, manifest: dict) -> LocalGeneration:
        """Verify every file's checksum, then read chunks, vectors, arrays and FAISS index, and
        check them against the manifest (see the module text). An exact ("flat") FAISS index is
        made again from the checked vectors rather than parsed: the same index, and a FAISS
        header that lies about its size past the checksums can make FAISS allocate it.

        Raises:
            FileNotFoundError: a file vanished (the build was replaced meanwhile).
            IndexCorruptError: a damaged or inconsistent build.
        """
        import faiss

        try:
            names = _array_names(manifest)
            _verify(build, manifest, names)
            with open(build / CHUNKS, encoding="utf-8") as fh:
                chunks = [_chunk(line) for line in fh if line.strip()]
            with np.errstate(all="ignore"):  # a lying header's sizes overflow: ValueError
                vectors = np.load(build / VECTORS, mmap_mode="r", allow_pickle=False)
                arrays = {name: np.load(build / f"{name}.npy", mmap_mode="r",
                                        allow_pickle=False) for name in names}  # fmt: skip
            dense = None  # exact search: made from the checked vectors below, nothing parsed
            if manifest.get("index_type") != "flat":
                dense = faiss.deserialize_index(np.fromfile(build / DENSE, dtype=np.uint8))
        except FileNotFoundError:
            raise
        except (OSError, ValueError, TypeError, RuntimeError, MemoryError) as exc:
            raise IndexCorruptError(
                f"index at {build} cannot be read ({reason(exc)})",
                REBUILD_HINT,
            ) from None
        problem = _inconsistency(manifest, chunks, vectors, arrays)
        if problem is None and dense is None:
            dense = faiss_index.exact(vectors)
        elif problem is None and (dense.ntotal, dense.d) != (len(chunks), manifest["model"]["dim"]):
            problem = "the FAISS index does not match the vectors"
        if problem is not None:
            raise IndexCorruptError(
                f"index at {build} is inconsistent ({problem})",
                REBUILD_HINT,
            )
        # plain arrays over the same mapped memory: numpy's memmap subclass adds Python-level
        # work to every indexing (measured: +30% per question on the report)
        arrays = {name: np.asarray(array) for name, array in arrays.items()}
        return cls(build, manifest, chunks, np.asarray(vectors), dense, arrays)

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

    def lexical(self, terms: Sequence[str], n: int, docs: Docs = None) -> LexicalHits:
        scores = self.lexical_index().scores(terms)
        mask = self.mask(docs)
        if mask is not None:
            scores[~mask] = 0.0
        matched = np.flatnonzero(scores > 0)
        top = matched[top_k(scores[matched], n)]
        return LexicalHits(top, scores[top])

    def vocabulary(self) -> Collection[str]:
        return self.lexical_index().vocab.keys()

    def term_frequencies(self, terms: Sequence[str]) -> np.ndarray:
        return self.lexical_index().frequencies(terms)

    def passages(self, ids: Sequence[int] | np.ndarray) -> Passages:
        ids = np.asarray(ids, dtype=np.int64)
        rows, bounds = gather_rows(self.bounds, ids)
        chunks = [self.chunks[i] for i in ids.tolist()]
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
    """The further arrays a manifest lists (names the manifest check found well formed)."""
    names = manifest.get("arrays") or []
    unknown = sorted(set(names) - set(ARRAYS))
    if unknown or len(set(names)) != len(names):
        raise IndexCorruptError(
            f"index manifest lists unknown arrays ({', '.join(unknown)[:80] or 'repeated'})",
            REBUILD_HINT,
        )
    return names


_CHUNK_TYPES = {"id": (int,), "doc": (str,), "section": (str, type(None)), "start": (int,),
                "end": (int,), "text": (str,), "page": (int, type(None)),
                "source_start": (int, type(None)), "source_end": (int, type(None))}  # fmt: skip


def _chunk(line: str) -> Chunk:
    """A line of chunks.jsonl as a Chunk, its fields of the right types.

    Raises:
        ValueError: malformed.
    """
    fields = json.loads(line)
    if type(fields) is not dict:
        raise ValueError("malformed passage")
    for key, value in fields.items():
        if type(value) not in _CHUNK_TYPES.get(key, ()):
            raise ValueError("malformed passage")
    return Chunk(**fields)


# array name -> (dtype kind, dimensions); the shapes are checked against the manifest below
ARRAYS = {
    sentences.TABLE: (np.dtype(np.int32), 2),
    sentences.VECTORS: (np.dtype(np.float32), 2),
    "bm25_data": (np.dtype(np.float32), 1),
    "bm25_indices": (np.dtype(np.int32), 1),
    "bm25_indptr": (np.dtype(np.int64), 1),
    "bm25_vocab": ("U", 1),
}


def _inconsistency(manifest: dict, chunks: list[Chunk], vectors: np.ndarray,
                   arrays: dict[str, np.ndarray]) -> str | None:  # fmt: skip
    """What in the loaded files disagrees with the manifest or itself, in words (None: all
    agree). Reads every array once; questions never check again."""
    n, dim = manifest["chunks"], manifest["model"]["dim"]
    if len(chunks) != n or any(c.id != i for i, c in enumerate(chunks)):
        return f"chunks.jsonl does not hold passages 0 to {n - 1} in order"
    known = {d["path"] for d in manifest["documents"]}
    if any(c.doc not in known for c in chunks):
        return "a passage belongs to no indexed document"
    if vectors.dtype != np.float32 or vectors.shape != (n, dim):
        return f"vectors.npy is not {n} x {dim} float32"
    for name, array in arrays.items():
        kind, ndim = ARRAYS[name]
        if (array.dtype.kind != kind if isinstance(kind, str) else array.dtype != kind) or (
            array.ndim != ndim
        ):
            return f"{name}.npy is not a {ndim}-dimensional {kind} array"
    if not _finite(vectors):
        return "vectors.npy holds values that are not finite numbers"
    return _sentences_problem(chunks, arrays, dim) or _bm25_problem(manifest, arrays, n)


def _sentences_problem(chunks: list[Chunk], arrays: dict[str, np.ndarray], dim: int) -> str | None:
    table, vectors = arrays.get(sentences.TABLE), arrays.get(sentences.VECTORS)
    if table is None and vectors is None:
        return None  # a build without sentence vectors
    if table is None or vectors is None or table.shape[1:] != (3,) or (
        vectors.shape != (len(table), dim)
    ):
        return "the sentence table and sentence vectors do not match"
    lengths = np.fromiter((len(c.text) for c in chunks), np.int64, count=len(chunks))
    ids, starts, ends = (table[:, i].astype(np.int64) for i in range(3))
    if len(table) and (
        ids.min() < 0 or ids.max() >= len(chunks) or starts.min() < 0
        or (ends < starts).any() or (ends > lengths[ids]).any()
    ):  # fmt: skip
        return "the sentence table points outside the passages"
    if not _finite(vectors):
        return "sentence_vectors.npy holds values that are not finite numbers"
    return None


def _bm25_problem(manifest: dict, arrays: dict[str, np.ndarray], n: int) -> str | None:
    if (manifest.get("lexical") or {}).get("version") != bm25.VERSION:
        return None  # none stored, or by another tokeniser: BM25 is computed on first use
    if not all(name in arrays for name in bm25.ARRAYS):
        return "the BM25 arrays are incomplete"
    data, indices, indptr, vocab = (arrays[name] for name in bm25.ARRAYS)
    if len(data) != len(indices) or len(indptr) != len(vocab) + 1:
        return "the BM25 arrays do not match each other"
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= n):
        return "the BM25 index points outside the passages"
    if int(indptr[0]) != 0 or int(indptr[-1]) != len(data) or (np.diff(indptr) < 0).any():
        return "the BM25 offsets are out of order"
    if not _finite(data):
        return "the BM25 scores are not finite numbers"
    return None


def _finite(array: np.ndarray, rows: int = 1 << 16) -> bool:
    """Whether every value is a finite number (read in slices: no copy of a large array)."""
    return all(np.isfinite(array[i : i + rows]).all() for i in range(0, len(array), rows))


def _verify(build: Path, manifest: dict, names: list[str]) -> None:
    """Check every data file against the manifest's sha256 before anything parses it."""
    files = manifest["files"]
    for name in (CHUNKS, VECTORS, DENSE, *(f"{n}.npy" for n in names)):
        path = build / name
        if name not in files or sha256_file(path) != files[name]:  # FileNotFoundError: retried
            raise IndexCorruptError(
                f"index file {path} is damaged (checksum mismatch)",
                REBUILD_HINT,
            )
