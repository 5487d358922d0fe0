"""The FAISS index over passage vectors: exact inner product (normalised vectors = cosine)."""

from __future__ import annotations

import numpy as np


def make_index(vectors: np.ndarray, index_type: str | None = None):
    """Build a FAISS index over normalised vectors.

    Args:
        vectors: float32 array (n, dim).
        index_type: "flat" (exact). None picks by size.

    Returns:
        (faiss index, the index type used).
    """
    import faiss

    index_type = index_type or "flat"
    if index_type != "flat":
        raise ValueError(f"unknown index type {index_type!r}")
    index = faiss.IndexFlatIP(vectors.shape[1])
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index, index_type
