"""Pooling of a model's token outputs: span means and unit-length rows (plain numpy)."""

from __future__ import annotations

import numpy as np


def pool_spans(
    hidden: np.ndarray, offsets: np.ndarray, spans: list[tuple[int, int]]
) -> np.ndarray:
    """Mean of the token vectors that overlap each character span (not normalised).

    Args:
        hidden: (tokens, dim) model output of one text.
        offsets: (tokens, 2) character offsets of each token in the text; special and padding
            tokens have empty offsets and are never pooled.
        spans: (start, end) character spans.

    Returns:
        (len(spans), dim) float32; a row of zeros for a span no token overlaps.
    """
    out = np.zeros((len(spans), hidden.shape[1]), dtype=np.float32)
    if not len(offsets):
        return out
    starts, ends = offsets[:, 0], offsets[:, 1]
    real = ends > starts
    for j, (s, e) in enumerate(spans):
        inside = real & (starts < e) & (ends > s)
        if inside.any():
            out[j] = hidden[inside].mean(axis=0)
    return out


def normalized(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32 and contiguous."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.clip(norms, 1e-12, None))
