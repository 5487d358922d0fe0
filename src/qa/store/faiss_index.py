"""The FAISS index over passage vectors (inner product of normalised vectors = cosine).

The kind follows the data size, so nobody has to tune it: exact search ("flat") below
`AUTO_THRESHOLD` vectors, an inverted file ("ivf") above. "hnsw" (a graph) is there for experts.
The threshold and the search parameters come from `benchmarks/run.py` on the 2-core machine
(docs/performance.md): below 50,000 vectors exact search takes about a millisecond or two, so
approximation buys nothing; past it exact search grows to tens of milliseconds (memory-bound)
while IVF answers in about a millisecond. How many IVF lists to search is measured on the data
at build time (`calibrate_nprobe`), since no fixed number or share held across the benchmarks.
FAISS stores nprobe/efSearch inside the index, so a loaded index searches as it was built.
"""

from __future__ import annotations

import math

import numpy as np

INDEX_TYPES = ("auto", "flat", "ivf", "hnsw")
AUTO_THRESHOLD = 50_000  # vectors; measured: see docs/performance.md
IVF_TRAIN_PER_LIST = 40  # training vectors per IVF list (k-means), capped by the data size
IVF_NPROBES = (8, 16, 32, 64, 128, 256)  # candidates for lists searched per query
IVF_TARGET_RECALL = 0.97  # the smallest candidate reaching it on held-out passages...
IVF_MARGIN = 2  # ...times this, at least IVF_MIN_NPROBE: questions lie farther from the passages
IVF_MIN_NPROBE = 32  # than passages from each other, and need more lists (docs/performance.md)
CALIBRATION_QUERIES = 200
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


def calibrate_nprobe(index, queries: np.ndarray, base: np.ndarray, base_ids: np.ndarray):
    """The fewest IVF lists to search per query for recall@10 >= IVF_TARGET_RECALL on this data.

    The recall of a given nprobe depended on the data and its size in the benchmarks (on the
    synthetic sets 128 of 565 lists gave 0.985 at 20,000 vectors, 16 of 4,000 gave 0.981 at
    1,000,000), so it is measured at build time. `queries` are held out: neither trained on nor
    yet in the index, which holds exactly `base` (with ids `base_ids`). Returns the smallest
    nprobe reaching the target and its recall; sets the index's nprobe to that times the margin.
    """
    import faiss

    k = min(10, len(base))
    _, truth = faiss.knn(queries, base, k, metric=faiss.METRIC_INNER_PRODUCT)
    truth = base_ids[truth]
    candidates = [p for p in IVF_NPROBES if p < index.nlist] + [index.nlist]
    for nprobe in candidates:
        index.nprobe = nprobe
        _, found = index.search(queries, k)
        pairs = zip(found, truth, strict=True)
        recall = float(np.mean([len(set(f) & set(t)) / k for f, t in pairs]))
        if recall >= IVF_TARGET_RECALL:
            break
    index.nprobe = min(index.nlist, max(IVF_MIN_NPROBE, nprobe * IVF_MARGIN))
    return nprobe, recall


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
    if kind == "ivf" and n < 4 * CALIBRATION_QUERIES:
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
        rng = np.random.default_rng(SEED)
        order = rng.permutation(n)
        held_out, rest = np.sort(order[:CALIBRATION_QUERIES]), np.sort(order[CALIBRATION_QUERIES:])
        train = rest[: nlist * IVF_TRAIN_PER_LIST]  # a random sample: `order` is shuffled
        index.cp.max_points_per_centroid = IVF_TRAIN_PER_LIST
        index.train(vectors[np.sort(train)])
        index.add_with_ids(vectors[rest], rest.astype(np.int64))
        calibrate_nprobe(index, vectors[held_out], vectors[rest], rest)
        index.add_with_ids(vectors[held_out], held_out.astype(np.int64))
        return index, kind
    if n:
        index.add(vectors)
    return index, kind


def exact(vectors: np.ndarray):
    """The exact ("flat") index over normalised vectors, as `make_index` builds it for "flat"
    (a loaded build makes it again from its vectors rather than parse a file)."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    if len(vectors):
        index.add(vectors)
    return index


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
