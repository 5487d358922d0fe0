"""BM25 over the passages (bm25s), stored with a local build as plain arrays.

Each passage is indexed with its document title and section heading (`terms.passage_text`), so
a keyword query that names the topic finds the passages under it. Parameters k1=0.9, b=0.4 (the
Anserini defaults) measured better than bm25s' own defaults on both benchmark sets (see
docs/retrieval.md).

A build computes the index (bm25s's sparse matrix of per-term passage scores) and stores it as
plain arrays, so a question costs a few sparse additions and no tokenising of the collection; a
build made before this (or with another tokeniser version) is indexed in memory on first use.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from qa.ingest.terms import MAX_TERM, tokenize

K1 = 0.9
B = 0.4
VERSION = 1  # of the tokeniser and parameters; stored arrays of another version are rebuilt
ARRAYS = ("bm25_data", "bm25_indices", "bm25_indptr", "bm25_vocab")


class LexicalIndex:
    """BM25 scores of every (term, passage) pair, as a sparse matrix by term.

    Build one with `LexicalIndex.build(texts)`; store it with `to_arrays` and load it back with
    `from_arrays`. Passages are numbered as in the texts given to `build`.
    """

    def __init__(
        self, data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, vocab: dict[str, int],
        size: int,
    ) -> None:  # fmt: skip
        self.data, self.indices, self.indptr = data, indices, indptr
        self.vocab = vocab
        self.size = size

    @classmethod
    def build(cls, texts: Sequence[str], k1: float = K1, b: float = B) -> LexicalIndex:
        """Tokenise and index the texts (one per passage) with bm25s (Lucene's BM25 variant)."""
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets DEBUG on import
        if not texts:
            return cls(np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(1, np.int64), {}, 0)
        bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
        # a passage without terms still needs a token, or bm25s drops its column
        bm25.index([tokenize(t) or [""] for t in texts], show_progress=False)
        m = bm25.scores
        vocab = {t: i for t, i in bm25.vocab_dict.items() if t}
        return cls(np.asarray(m["data"], np.float32), np.asarray(m["indices"], np.int32),
                   np.asarray(m["indptr"], np.int64), vocab, len(texts))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The index as plain numeric and string arrays (for `store.write_build`)."""
        terms = sorted(self.vocab, key=self.vocab.get)
        ids = np.array([self.vocab[t] for t in terms], dtype=np.int64)
        # vocab as a string array in id order; ids are 0..n-1 except for the dropped empty token
        vocab = np.full(len(self.indptr) - 1, "", dtype=f"<U{MAX_TERM}")
        vocab[ids] = terms
        data, indices, indptr, names = self.data, self.indices, self.indptr, ARRAYS
        return dict(zip(names, (data, indices, indptr, vocab), strict=True))

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], size: int) -> LexicalIndex | None:
        """The index stored by `to_arrays`, or None when the arrays are missing or malformed."""
        if not all(name in arrays for name in ARRAYS):
            return None
        data, indices, indptr, vocab = (arrays[name] for name in ARRAYS)
        if (
            len(data) != len(indices)
            or len(indptr) != len(vocab) + 1
            or (len(indptr) and int(indptr[-1]) != len(data))
            or (len(indices) and (int(indices.max()) >= size or int(indices.min()) < 0))
        ):
            return None
        terms = {str(t): i for i, t in enumerate(vocab.tolist()) if t}
        return cls(data, indices, indptr, terms, size)

    def _postings(self, term: str) -> slice | None:
        tid = self.vocab.get(term)
        return None if tid is None else slice(int(self.indptr[tid]), int(self.indptr[tid + 1]))

    def scores(self, query: str | Sequence[str]) -> np.ndarray:
        """BM25 score of every passage for a query (text or terms); zeros when nothing matches.

        A term repeated in the query counts as often as it occurs (as in bm25s).
        """
        terms = tokenize(query) if isinstance(query, str) else list(query)
        out = np.zeros(self.size, dtype=np.float32)
        for term in terms:
            rows = self._postings(term)
            if rows is not None:  # (a term's postings name each passage once: a plain add)
                out[self.indices[rows]] += self.data[rows]
        return out

    def frequencies(self, terms: Sequence[str]) -> np.ndarray:
        """In how many passages each term occurs (0 for a term not in the vocabulary)."""
        out = np.zeros(len(terms), dtype=np.int64)
        for i, term in enumerate(terms):
            rows = self._postings(term)
            if rows is not None:
                out[i] = rows.stop - rows.start
        return out
