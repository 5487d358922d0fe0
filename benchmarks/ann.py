"""Part `ann`: FAISS index kinds on the real chunk vectors of the large set, with its questions.

`qa` searches exactly below 50,000 vectors and with IVF above, its nprobe calibrated at build
time (`qa.store.faiss_index`). This measures each kind `qa` can build (flat, IVF at several
nprobe, HNSW at several efSearch; the calibrated default marked) on real vectors with real
questions as queries: build time, memory, p50 latency of one query on one FAISS thread (as a
serving process asks), and recall@10 against exact search. Real questions sit farther from the
passages than passages from each other, so this shows the margin IVF needs on real data.
`ann_sweep` is shared with part `synthetic`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from common import large_index, log, pct, sample_queries


def ann_sweep(vectors: np.ndarray, queries: np.ndarray, label: str, kinds: list[str],
              n_latency: int = 200) -> list[dict]:
    """Index kinds on one vector set: build time, memory, p50 latency, recall@10 vs exact."""
    import faiss

    from qa.store import faiss_index

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    start = time.perf_counter()
    _, truth = exact.search(queries, 10)  # batched ground truth
    log(f"{label}: ground truth in {time.perf_counter() - start:.1f}s")
    rows = []

    def measure(index, kind: str, params: dict, build_s: float, memory: int) -> None:
        faiss.omp_set_num_threads(1)  # one query at a time, as a serving process asks
        lat = []
        for q in queries[:n_latency]:
            t = time.perf_counter()
            index.search(q[None, :], 10)
            lat.append(time.perf_counter() - t)
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        _, found = index.search(queries, 10)
        pairs = zip(found, truth, strict=True)
        recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in pairs]))
        rows.append({"set": label, "n": len(vectors), "kind": kind, **params,
                     "build_s": build_s, "memory_mib": memory / 2**20,
                     "p50_ms": pct(lat, 50) * 1e3, "recall10": recall})
        log(f"{label} {kind} {params}: p50 {pct(lat, 50) * 1e3:.2f} ms, recall {recall:.3f}")

    for kind in kinds:
        start = time.perf_counter()
        index, used = faiss_index.make_index(vectors, kind)
        build_s = time.perf_counter() - start
        memory = len(faiss.serialize_index(index)) if used != "flat" else vectors.nbytes
        default = faiss_index.search_params(index)
        if used == "ivf":
            for nprobe in sorted({16, 32, 64, 128, 256, default["nprobe"]}):
                if nprobe <= index.nlist:
                    index.nprobe = nprobe
                    measure(index, used, {"nlist": index.nlist, "nprobe": nprobe,
                                          "default": nprobe == default["nprobe"]}, build_s, memory)
        elif used == "hnsw":
            for ef in sorted({32, 64, 128, 256, default["efSearch"]}):
                index.hnsw.efSearch = ef
                measure(index, used, {"efSearch": ef, "default": ef == default["efSearch"]},
                        build_s, memory)
        else:
            measure(index, used, {"default": True}, build_s, memory)
        del index
    return rows


def part(work: Path, backend: str, large: str, quick: bool, args) -> dict:
    """Index kinds on the real chunk vectors of the large set, with its own questions."""
    from qa.embed.embedder import Embedder
    from qa.store import open_store

    generation = open_store(large_index(work, backend, large)).open()
    embedder = Embedder(backend=generation.manifest["model"].get("backend", "torch"))
    queries = embedder.encode(sample_queries(large, 1000))
    return {"rows": ann_sweep(np.ascontiguousarray(generation.vectors), queries, f"real {large}",
                              ["flat", "ivf", "hnsw"])}
