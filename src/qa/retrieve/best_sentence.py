"""The best sentence of each candidate passage: its highest sentence cosine with the question.

A question often matches one sentence better than a whole paragraph; hybrid ranking blends a
passage's best sentence score into its own (`qa.retrieve.fusion`).
"""

from __future__ import annotations

import numpy as np

from qa.store.base import Passages, gather_rows


def best_sentence(
    passages: Passages,
    query: np.ndarray,
    members: np.ndarray | None = None,
    which: np.ndarray | None = None,
) -> np.ndarray:
    """For each passage, the highest cosine of any of its sentences with `query`; -1 for a
    passage without sentences.

    Args:
        passages: the candidates, with their sentence vectors.
        query: one question vector (dim,), or several (q, dim) with `which`.
        members: positions of the passages to score (default: all, in order).
        which: with several questions, the one passage members[i] is scored against.
    """
    if members is None:  # all of them: their sentence rows in place (a view, not a copy)
        members = np.arange(len(passages))
        bounds = np.asarray(passages.bounds, np.int64) - passages.bounds[0]
        vectors = passages.sentence_vectors[passages.bounds[0] : passages.bounds[-1]]
    else:
        members = np.asarray(members, np.int64)
        rows, bounds = gather_rows(passages.bounds, members)
        vectors = passages.sentence_vectors[rows]
    out = np.full(len(members), -1.0, dtype=np.float32)
    lengths = np.diff(bounds)
    has = lengths > 0
    if not has.any():
        return out
    firsts, lengths = bounds[:-1][has], lengths[has]  # each passage's first score, and count
    if which is None:
        scores = vectors @ query  # one product for all sentences
    else:
        per_row = np.repeat(np.asarray(which)[has], lengths)
        scores = (vectors @ query.T)[np.arange(len(vectors)), per_row]
    out[has] = np.maximum.reduceat(scores, firsts)
    return out
