"""Part `backends`: torch, ONNX and ONNX-int8 side by side, on speed and on retrieval quality.

ONNX Runtime became the default backend on the rule "at least 1.5x faster than torch here, and
nDCG@10 on medquad-small within 0.01" (docs/performance.md, "What makes it fast"). For each
backend this times loading the model (with the one-off ONNX export the first time), builds a
fresh index of the first medquad-small answers (everything embedded), scores nDCG@10 of the
library search on their questions, and compares the vectors of a fixed sample of chunk texts
with torch's (the largest absolute difference: torch and onnx must agree to about 1e-7 to share
reused vectors).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from common import SHARED, embed_texts_sample, log, read_jsonl, write_medquad


def ndcg_at_10(index: Path, queries: list[dict], qrels: dict[str, set[str]]) -> float:
    """nDCG@10 of the library search over a BEIR set (answers as documents, binary relevance)."""
    from qa.retrieve.searcher import Searcher

    searcher = Searcher(index)
    total = 0.0
    for q in queries:
        ranked: list[str] = []
        for hit in searcher.search(q["text"], 50):
            doc = Path(hit.doc).stem.split("~")[0]  # a repeated id's file counts as that id
            if doc not in ranked:
                ranked.append(doc)
        rel = qrels.get(q["_id"], set())
        dcg = sum(1 / math.log2(r + 2) for r, d in enumerate(ranked[:10]) if d in rel)
        ideal = sum(1 / math.log2(r + 2) for r in range(min(len(rel), 10)))
        total += dcg / ideal if ideal else 0.0
    return total / len(queries)


def backends(work: Path, name: str, limit: int | None, n_queries: int | None) -> list[dict]:
    """ONNX and ONNX-int8 against torch: export time, build throughput, nDCG@10 (same texts)."""
    from qa.build import build_index
    from qa.embed.embedder import Embedder

    corpus = work / f"{name}-first-{limit}-corpus"
    ids = {stem.split("~")[0] for stem in write_medquad(name, corpus, limit)}
    qrels: dict[str, set[str]] = {}
    with open(SHARED / name / "qrels.tsv", encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            qid, did, score = line.rstrip("\n").split("\t")
            if int(score) > 0 and did in ids:
                qrels.setdefault(qid, set()).add(did)
    queries = [q for q in read_jsonl(SHARED / name / "queries.jsonl") if q["_id"] in qrels]
    queries = queries[:n_queries]
    rows = []
    probe = embed_texts_sample(work, 64)
    reference = None
    for backend in ("torch", "onnx", "onnx-int8"):
        start = time.perf_counter()
        embedder = Embedder(backend=backend)
        embedder.model  # noqa: B018 - export (first time only) + load
        load_s = time.perf_counter() - start
        vectors = embedder.encode(probe)
        reference = vectors if reference is None else reference
        index = work / f"{name}-{backend}"
        s = build_index(corpus, index, embedder=embedder)  # fresh folder: everything embedded
        ndcg = ndcg_at_10(index, queries, qrels)
        rows.append({"backend": backend, "chunks": s.chunks, "build_s": s.seconds,
                     "chunks_per_s": s.chunks / s.seconds, "load_s": load_s,
                     "ndcg10": ndcg, "queries": len(queries),
                     "max_abs_diff": float(np.abs(vectors - reference).max())})
        log(f"{backend}: {s.chunks / s.seconds:.1f} chunks/s, nDCG@10 {ndcg:.4f}")
    return rows


def part(work: Path, backend: str, large: str, quick: bool, args) -> dict:
    n = 100 if quick else 150
    return {"set": f"the first {n} medquad-small answers and their questions",
            "rows": backends(work, "medquad-small", n, None)}
