"""Part `tune`: threads and batch size for each backend, and FAISS threads, on this machine.

`qa`'s defaults (build batch 8; a build on the free cores; a question encoded and searched on
one thread) were chosen from these figures rather than guessed: on a shared 2-core machine the
best thread count depends on the load (docs/performance.md, "What makes it fast"). Each backend
encodes a fixed sample of real medquad-small chunk texts at each thread count and batch size,
then one short question at a time; an exact FAISS search over 35,000 random vectors is timed at
each thread count.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
from common import ASK, K, embed_texts_sample, log, pct


def tune(sample: list[str], quick: bool) -> dict:
    """Threads and batch size for each backend, and FAISS threads, on this machine."""
    import faiss
    import torch

    from qa import config
    from qa.embed import onnx as onnx_model
    from qa.embed.embedder import Embedder

    out: dict = {"encode": [], "query": [], "faiss": []}
    threads = sorted({1, os.cpu_count() or 1})
    batches = [8, 16, 32] if not quick else [8, 16]
    for backend in ("torch", "onnx"):
        e = Embedder(backend=backend)
        e.model  # noqa: B018
        for t in threads:
            if backend == "torch":
                torch.set_num_threads(t)
                model = e.model
            else:
                path = onnx_model.ensure_export(e.model_id, e._load_path, backend)
                model = onnx_model.OnnxModel(path, threads=t)
            for b in batches:
                best = math.inf
                for _ in range(1):
                    start = time.perf_counter()
                    model.encode(sample, batch_size=b, normalize_embeddings=True)
                    best = min(best, time.perf_counter() - start)
                out["encode"].append({"backend": backend, "threads": t, "batch": b,
                                      "chunks_per_s": len(sample) / best})
                log(f"tune {backend} threads={t} batch={b}: {len(sample) / best:.1f} chunks/s")
            lat = []
            for q in [ASK, "chiropractor", "What is the capital of France?"] * 10:
                start = time.perf_counter()
                model.encode([q], batch_size=1, normalize_embeddings=True)
                lat.append(time.perf_counter() - start)
            out["query"].append({"backend": backend, "threads": t, "p50_ms": pct(lat, 50) * 1e3})
    torch.set_num_threads(config.threads())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((35_000, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(384)
    index.add(x)
    for t in threads:
        faiss.omp_set_num_threads(t)
        lat = []
        for i in range(200):
            start = time.perf_counter()
            index.search(x[i : i + 1], K)
            lat.append(time.perf_counter() - start)
        out["faiss"].append({"threads": t, "n": len(x), "p50_ms": pct(lat, 50) * 1e3})
    faiss.omp_set_num_threads(config.threads())
    return out


def part(work: Path, backend: str, large: str, quick: bool, args) -> dict:
    return tune(embed_texts_sample(work, 32 if quick else 48), quick)
