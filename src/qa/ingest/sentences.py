"""Sentence vectors of every passage, computed at build time.

They serve twice: the hybrid ranking adds a passage's best sentence match to its own score
(a question often matches one sentence better than a whole paragraph), and highlighting picks
the sentences of a hit that best answer the question - with no model call at query time.

A sentence's vector is pooled from its passage's own forward pass (the mean of the model's
token outputs inside the sentence, read in the context of the passage; see
`Embedder.encode_spans`), so a build runs the model once per passage, not once more per
sentence. The README's "Retrieval quality" section compares it with embedding each sentence on
its own.

Stored with the build as two arrays: ``sentences`` (int32, one row per sentence: chunk id,
start, end, offsets relative to the chunk's text) and ``sentence_vectors`` (float32).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qa.ingest.chunking import Chunk
from qa.ingest.text import normalize, sentence_spans

TABLE = "sentences"
VECTORS = "sentence_vectors"


def sentence_table(chunks: Sequence[Chunk]) -> np.ndarray:
    """One row per sentence of every chunk: (chunk id, start, end), offsets into chunk.text."""
    rows = [(c.id, s, e) for c in chunks for s, e in sentence_spans(c.text)]
    return np.array(rows, dtype=np.int32).reshape(-1, 3)


def sentence_texts(chunks: Sequence[Chunk], table: np.ndarray) -> list[str]:
    """The text of each sentence row, white space normalised."""
    by_id = {c.id: c for c in chunks}
    return [normalize(by_id[int(cid)].text[int(s) : int(e)]) for cid, s, e in table]


def model_spans(chunk: Chunk, embedded: str) -> list[tuple[int, int]]:
    """Where each sentence of `chunk` lies in `embedded`, the text the model sees for it
    (`chunking.embed_text`: heading, newline, the passage with white space normalised)."""
    spans = []
    pos = len(embedded) - len(normalize(chunk.text))  # the passage comes after the heading
    for s, e in sentence_spans(chunk.text):
        sentence = normalize(chunk.text[s:e])
        start = embedded.find(sentence, pos)
        if start < 0:  # cannot happen for an embed_text of this chunk; keep offsets sane
            raise ValueError(f"sentence not found in the embedded text of chunk {chunk.id}")
        spans.append((start, start + len(sentence)))
        pos = start + len(sentence)
    return spans


def rows_per_chunk(table: np.ndarray, chunks: int) -> np.ndarray:
    """Bounds of each chunk's rows in a table sorted by chunk: rows of chunk i are
    bounds[i]:bounds[i + 1]."""
    return np.searchsorted(table[:, 0], np.arange(chunks + 1)) if len(table) else \
        np.zeros(chunks + 1, dtype=np.int64)


def previous_vectors(
    arrays: dict[str, np.ndarray], keys: Sequence[str], pooled: bool
) -> dict[str, np.ndarray]:
    """The sentence vectors of an earlier build by its passages' keys: passage key -> (its
    sentences, dim). Empty unless that build pooled them from the passage (`pooled`), since
    older builds embedded each sentence on its own, which gives other vectors."""
    table, vectors = arrays.get(TABLE), arrays.get(VECTORS)
    if not pooled or table is None or vectors is None or len(table) != len(vectors):
        return {}
    if len(table) and (int(table[:, 0].max()) >= len(keys) or np.any(np.diff(table[:, 0]) < 0)):
        return {}
    bounds = rows_per_chunk(table, len(keys))
    return {key: vectors[bounds[i] : bounds[i + 1]] for i, key in enumerate(keys)}


class SentenceIndex:
    """Sentence rows and vectors of a build, grouped by chunk.

    Args:
        table: (n, 3) int array of chunk id, start, end.
        vectors: (n, dim) float32 array.
        chunks: number of chunks in the build.
    """

    def __init__(self, table: np.ndarray, vectors: np.ndarray, chunks: int) -> None:
        self.table = table
        self.vectors = vectors
        order = np.argsort(table[:, 0], kind="stable") if len(table) else np.zeros(0, np.int64)
        self.table, self.vectors = table[order], vectors[order]
        self._bounds = rows_per_chunk(self.table, chunks)

    def rows(self, chunk_id: int) -> slice:
        """The rows of one chunk's sentences, in reading order."""
        return slice(int(self._bounds[chunk_id]), int(self._bounds[chunk_id + 1]))

    def spans(self, chunk_id: int) -> list[tuple[int, int]]:
        """(start, end) of each sentence of a chunk, relative to the chunk's text."""
        return [(int(s), int(e)) for _, s, e in self.table[self.rows(chunk_id)]]

    def best(
        self, query: np.ndarray, chunk_ids: np.ndarray, which: np.ndarray | None = None
    ) -> np.ndarray:
        """For each chunk, the highest cosine of any of its sentences with `query` (shape (dim,));
        -1 for a chunk without sentences.

        With `which`, `query` holds several questions (shape (q, dim)) and chunk i is scored
        against query[which[i]].
        """
        out = np.full(len(chunk_ids), -1.0, dtype=np.float32)
        ids = np.asarray(chunk_ids, dtype=np.int64)
        starts, lengths = self._bounds[ids], self._bounds[ids + 1] - self._bounds[ids]
        has = lengths > 0
        if not has.any():
            return out
        starts, lengths = starts[has], lengths[has]
        firsts = np.concatenate(([0], np.cumsum(lengths)[:-1]))  # each chunk's first score
        rows = np.arange(int(lengths.sum())) + np.repeat(starts - firsts, lengths)
        if which is None:
            scores = self.vectors[rows] @ query  # one product for all candidates' sentences
        else:
            per_row = np.repeat(np.asarray(which)[has], lengths)
            scores = (self.vectors[rows] @ query.T)[np.arange(len(rows)), per_row]
        out[has] = np.maximum.reduceat(scores, firsts)
        return out
