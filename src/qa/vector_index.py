"""The FAISS index over passage vectors (inner product of normalised vectors = cosine).

The kind follows the data size, so nobody has to tune it: exact search ("flat") below
`AUTO_THRESHOLD` vectors, an inverted file ("ivf") above. "hnsw" (a graph) is there for experts.
The threshold and the search parameters come from `benchmarks/run.py` on the 2-core machine
(README, Performance): below the threshold exact search costs less than embedding the question,
and past it IVF with these settings keeps recall@10 >= 0.95 at a fraction of the latency.
FAISS stores nprobe/efSearch inside the index, so a loaded index searches as it was built.
"""

from __future__ import annotations

import math

import numpy as np

INDEX_TYPES = ("auto", "flat", "ivf", "hnsw")
AUTO_THRESHOLD = 200_000  # vectors; measured: see README, Performance
IVF_TRAIN_PER_LIST = 40  # training vectors per IVF list (k-means), capped by the data size
IVF_NPROBE_FRACTION = 1 / 32  # lists searched per query, as a share of nlist (measured)
IVF_MIN_NPROBE = 32
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 96  # measured: recall@10 >= 0.95 on real and synthetic vectors
SEED = 1234


def choose_type(n: int, index_type: str | None = None) -> str:
    """The index kind for `n` vectors: the one asked for, else by size ("auto").

    Raises:
        ValueError: an unknown kind.
    """
    index_type = index_type or "auto"
    if index_type not in INDEX_TYPES:
        choices = ", ".join(INDEX_TYPES)
        raise ValueError(f"unknown index type {index_type!r} (choose from {choices})")
    if index_type == "auto":
        return "ivf" if n >= AUTO_THRESHOLD else "flat"
    return index_type


def ivf_lists(n: int) -> int:
    """IVF lists for n vectors: about 4 * sqrt(n), at least 1, never more than n / 8."""
    return max(1, min(int(4 * math.sqrt(n)), n // 8))


def ivf_nprobe(nlist: int) -> int:
    """Lists searched per query for an IVF index of `nlist` lists."""
    return min(nlist, max(IVF_MIN_NPROBE, round(nlist * IVF_NPROBE_FRACTION)))


def make_index(vectors: np.ndarray, index_type: str | None = None):
    """Build a FAISS index over normalised vectors.

    Args:
        vectors: float32 array (n, dim).
        index_type: "flat" (exact), "ivf", "hnsw", or "auto"/None to pick by size.

    Returns:
        (faiss index, the index type used).

    Raises:
        ValueError: an unknown index type.
    """
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    kind = choose_type(n, index_type)
    if kind == "ivf" and n < 64:
        kind = "flat"  # too few vectors to train a quantiser; exact search is instant anyway
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        nlist = ivf_lists(n)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10
        index.cp.seed = SEED
        sample = min(n, nlist * IVF_TRAIN_PER_LIST)
        rows = np.random.default_rng(SEED).choice(n, size=sample, replace=False)
        index.cp.max_points_per_centroid = IVF_TRAIN_PER_LIST
        index.train(vectors[np.sort(rows)])
        index.nprobe = ivf_nprobe(nlist)
    if n:
        index.add(vectors)
    return index, kind


def search_params(index) -> dict:
    """The search parameters stored in a FAISS index (for `qa info` and the benchmarks)."""
    import faiss

    if isinstance(index, faiss.IndexIVF):
        return {"nlist": int(index.nlist), "nprobe": int(index.nprobe)}
    if isinstance(index, faiss.IndexHNSW):
        return {"M": HNSW_M, "efSearch": int(index.hnsw.efSearch)}
    return {}
