"""Part `warm`: (a) warm query latency against its floor, and (e) the serving process's memory.

(a) Everything `qa` does for a question in a loaded process (its language and the pair's
weights, hybrid ranking with BM25 candidates, sentence and aspect scores, the query adapter,
highlights, the missing words, the "answered" check) is timed against the least any search can
do: encode the question with both models and run an exact FAISS search over the same vectors. The
two are interleaved question by question (which one goes first alternates), so load on the
shared machine hits both alike. Target: p50 and p95 at most 1.3x the floor, on the report and
on the large data set (medquad-full; medquad-small with --quick).

(e) Peak RSS of a `qa ask` process that loads the large index and answers 50 of its questions
read from standard input; the model-only floor comes from part `cold`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from common import (
    REPORT_CORPUS,
    REPORT_QUESTIONS,
    K,
    large_index,
    measured_process,
    pct,
    read_jsonl,
    sample_queries,
)


def warm_queries(index_dir: Path, questions: list[str]) -> dict:
    """(a) library search vs the floor: encode the question + exact FAISS search, interleaved."""
    import faiss

    from qa.retrieve.searcher import Searcher
    from qa.store import faiss_index

    searcher = Searcher(index_dir)
    embedder = searcher.embedder
    vectors = searcher.generation.vectors
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(np.ascontiguousarray(vectors))

    weights = np.asarray(embedder.weights)

    def floor(q: str) -> None:  # both models, then one FAISS thread, as the library searches
        parts = [p[0] for p in embedder.member_questions([q])]
        faiss_index.search(flat, embedder.join_question(parts, weights)[None, :], K)

    for q in questions[:5]:  # warm-up
        searcher.search(q, K)
        floor(q)
    lib, base = [], []
    for i, q in enumerate(questions):
        order = [(searcher.search, lib), (floor, base)]
        for fn, sink in order if i % 2 else order[::-1]:
            start = time.perf_counter()
            fn(q) if fn is floor else fn(q, K)
            sink.append(time.perf_counter() - start)
    return {
        "chunks": searcher.generation.size, "queries": len(questions),
        "index_type": searcher.manifest.get("index_type"),
        "backend": embedder.backend,
        "mode": searcher.ask(questions[0], K).mode,
        "p50_ms": pct(lib, 50) * 1e3, "p95_ms": pct(lib, 95) * 1e3,
        "floor_p50_ms": pct(base, 50) * 1e3, "floor_p95_ms": pct(base, 95) * 1e3,
    }


def serving_rss(index: Path, questions: list[str]) -> dict:
    """(e) peak RSS of a process that loads an index and answers questions (`qa ask` batch)."""
    got = measured_process([sys.executable, "-m", "qa", "ask", "--index", str(index), "--json"],
                           stdin_text="\n".join(questions) + "\n")
    return {"rss_mib": got["rss_mib"], "questions": len(questions), "seconds": got["seconds"]}


def part(work: Path, backend: str, large: str, quick: bool, args) -> dict:
    """(a) warm queries on the report and the large set; (e) serving RSS on the large set."""
    from qa.build import build_index

    report_index = work / "index-report"
    build_index(REPORT_CORPUS, report_index, backend=backend)
    report_qs = [q["question"] for q in read_jsonl(REPORT_QUESTIONS)] * (2 if quick else 6)
    index = large_index(work, backend, large)
    picked = sample_queries(large, 300)
    return {"report": warm_queries(report_index, report_qs), "set": large,
            "large": warm_queries(index, picked[: 60 if quick else 300]),
            "serving": serving_rss(index, picked[:50])}
