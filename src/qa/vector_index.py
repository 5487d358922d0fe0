"""The FAISS index over passage vectors (inner product of normalised vectors = cosine).

The kind follows the data size, so nobody has to tune it: exact search ("flat") below
`AUTO_THRESHOLD` vectors, an inverted file ("ivf") above. "hnsw" (a graph) is there for experts.
The threshold and the search parameters come from `benchmarks/run.py` on the 2-core machine
(README, Performance): below 50,000 vectors exact search takes about a millisecond or two, so
approximation buys nothing; past it exact search grows to tens of milliseconds (memory-bound),
and IVF searching 128 lists keeps recall@10 >= 0.95 on synthetic embeddings shaped like real
ones (64 lists gave 0.93 at 20,000-50,000 vectors).
FAISS stores nprobe/efSearch inside the index, so a loaded index searches as it was built.
"""

from __future__ import annotations

import math

import numpy as np

INDEX_TYPES = ("auto", "flat", "ivf", "hnsw")
AUTO_THRESHOLD = 50_000  # vectors; measured: see README, Performance
IVF_TRAIN_PER_LIST = 40  # training vectors per IVF list (k-means), capped by the data size
IVF_NPROBE = 128  # lists searched per query (measured: recall@10 >= 0.95 from 20k to 1M vectors)
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 96  # measured: recall@10 0.99 on 20,000-50,000 synthetic vectors
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
    """Lists searched per query for an IVF index of `nlist` lists: a fixed count, since the
    recall of a given count held steady (or rose) as the data grew, where a fixed share of the
    lists would search ever more vectors."""
    return min(nlist, IVF_NPROBE)


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


def search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """index.search, on one thread for a single query: measured 10 ms against 62 ms with two
    threads over 35,000 vectors on the busy 2-core machine (OpenMP start-up and waiting)."""
    import faiss

    if len(queries) != 1:
        return index.search(queries, k)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return index.search(queries, k)
    finally:
        faiss.omp_set_num_threads(threads)


def search_params(index) -> dict:
    """The search parameters stored in a FAISS index (for `qa info` and the benchmarks)."""
    import faiss

    if isinstance(index, faiss.IndexIVF):
        return {"nlist": int(index.nlist), "nprobe": int(index.nprobe)}
    if isinstance(index, faiss.IndexHNSW):
        return {"M": HNSW_M, "efSearch": int(index.hnsw.efSearch)}
    return {}
