"""Sentence vectors of every passage, computed at build time.

They serve twice: the hybrid ranking adds a passage's best sentence match to its own score
(a question often matches one sentence better than a whole paragraph), and highlighting picks
the sentences of a hit that best answer the question - with no model call at query time.

Stored with the build as two arrays: ``sentences`` (int32, one row per sentence: chunk id,
start, end, offsets relative to the chunk's text) and ``sentence_vectors`` (float32).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from qa.chunking import Chunk
from qa.text import normalize, sentence_spans

TABLE = "sentences"
VECTORS = "sentence_vectors"


def sentence_table(chunks: Sequence[Chunk]) -> np.ndarray:
    """One row per sentence of every chunk: (chunk id, start, end), offsets into chunk.text."""
    rows = [(c.id, s, e) for c in chunks for s, e in sentence_spans(c.text)]
    return np.array(rows, dtype=np.int32).reshape(-1, 3)


def sentence_texts(chunks: Sequence[Chunk], table: np.ndarray) -> list[str]:
    """The text of each sentence row, white space normalised (what the model sees)."""
    by_id = {c.id: c for c in chunks}
    return [normalize(by_id[int(cid)].text[int(s) : int(e)]) for cid, s, e in table]


def embed_sentences(
    chunks: Sequence[Chunk],
    encode: Callable[[list[str]], np.ndarray],
    key: Callable[[str], str],
    cached: dict[str, np.ndarray],
    dim: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """The sentence table and vectors of `chunks`, reusing vectors from `cached` by text key.

    Args:
        chunks: the passages.
        encode: embeds a list of texts (normalised float32 rows).
        key: cache key of a text (model id and text).
        cached: previously computed vectors by key.
        dim: vector dimension.

    Returns:
        (table, vectors, how many sentences had to be embedded).
    """
    table = sentence_table(chunks)
    texts = sentence_texts(chunks, table)
    keys = [key(t) for t in texts]
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    todo = []
    for i, k in enumerate(keys):
        if k in cached:
            vectors[i] = cached[k]
        else:
            todo.append(i)
    if todo:
        vectors[todo] = encode([texts[i] for i in todo])
    return table, vectors, len(todo)


def previous_vectors(
    chunks: Sequence[Chunk], arrays: dict[str, np.ndarray], key: Callable[[str], str]
) -> dict[str, np.ndarray]:
    """Sentence vectors of an earlier build by text key (empty if it has none)."""
    table, vectors = arrays.get(TABLE), arrays.get(VECTORS)
    if table is None or vectors is None or len(table) != len(vectors):
        return {}
    if len(table) and int(table[:, 0].max()) >= len(chunks):
        return {}
    return {key(t): vectors[i] for i, t in enumerate(sentence_texts(chunks, table))}


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
        self._bounds = np.searchsorted(self.table[:, 0], np.arange(chunks + 1))

    def rows(self, chunk_id: int) -> slice:
        """The rows of one chunk's sentences, in reading order."""
        return slice(int(self._bounds[chunk_id]), int(self._bounds[chunk_id + 1]))

    def spans(self, chunk_id: int) -> list[tuple[int, int]]:
        """(start, end) of each sentence of a chunk, relative to the chunk's text."""
        return [(int(s), int(e)) for _, s, e in self.table[self.rows(chunk_id)]]

    def best(self, query: np.ndarray, chunk_ids: np.ndarray) -> np.ndarray:
        """For each chunk, the highest cosine of any of its sentences with `query` (shape (dim,));
        -1 for a chunk without sentences."""
        out = np.full(len(chunk_ids), -1.0, dtype=np.float32)
        ids = np.asarray(chunk_ids, dtype=np.int64)
        starts, lengths = self._bounds[ids], self._bounds[ids + 1] - self._bounds[ids]
        has = lengths > 0
        if not has.any():
            return out
        starts, lengths = starts[has], lengths[has]
        firsts = np.concatenate(([0], np.cumsum(lengths)[:-1]))  # each chunk's first score
        rows = np.arange(int(lengths.sum())) + np.repeat(starts - firsts, lengths)
        scores = self.vectors[rows] @ query  # one product for all candidates' sentences
        out[has] = np.maximum.reduceat(scores, firsts)
        return out
