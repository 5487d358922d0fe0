"""Sentence vectors of every passage, computed at build time.

They serve twice: the hybrid ranking adds a passage's best sentence match to its own score
(a question often matches one sentence better than a whole paragraph), and highlighting picks
the sentences of a hit that best answer the question - with no model call at query time.

A sentence's vector is pooled from its passage's own forward pass (the mean of the model's
token outputs inside the sentence, read in the context of the passage; see
`Embedder.encode_spans`), so a build runs the model once per passage, not once more per
sentence. docs/retrieval.md ("How the fusion was chosen") compares it with embedding each
sentence on its own.

A local build stores them as two arrays: ``sentences`` (int32, one row per sentence: chunk id,
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
