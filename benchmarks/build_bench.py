"""Part `build`: (b) build throughput, (d) rebuilds and (e) the build process's memory.

(b) A whole `qa build` (load, chunk, embed passages with their sentence vectors, BM25, FAISS,
write, switch) against the floor of the model alone encoding the very texts the build embedded.
Each runs in its own process (`run_worker`), build and floor alternating twice because the
shared machine's load drifts; the best of each is kept. Target: build at least 0.9x the floor.

(d) Rebuilding with nothing changed, then after one sentence was added to one document, each
against the first build. Target: at most 0.10x (only changed passages are embedded).

(e) Peak RSS of the build process beside that of the encode-only process.

The corpus: the shortest answers of medquad-full, one file each (>= 1,000 documents; 200 with
--quick).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from common import SHARED, embed_texts, log, manifest, read_jsonl, run_worker


def worker_main(mode: str, payload_file: str) -> None:
    """Child-process measurements, so that peak RSS belongs to one job only."""
    payload = json.loads(Path(payload_file).read_text())
    from qa.embed.embedder import Embedder

    embedder = Embedder(backend=payload["backend"])
    embedder.model  # noqa: B018 - loaded before the clock starts, as for the floor
    if mode == "encode":  # floor for (b): the model's raw encode of the same texts
        texts = payload["texts"]
        start = time.perf_counter()
        embedder.encode(texts)
        print(json.dumps({"seconds": time.perf_counter() - start, "n": len(texts)}))
    elif mode == "build":
        from qa.build import build_index

        start = time.perf_counter()
        s = build_index(payload["corpus"], payload["index"], embedder=embedder)
        print(json.dumps({"seconds": time.perf_counter() - start, "chunks": s.chunks,
                          "embedded": s.embedded, "documents": s.documents}))


def build_and_rebuild(corpus: Path, index: Path, backend: str) -> dict:
    """(b) build throughput vs raw encode, (d) rebuilds, (e) build RSS; one corpus."""
    from qa.build import build_index
    from qa.embed.embedder import Embedder

    builds, raws = [], []
    for rep in range(2):  # build, floor, floor, build: the machine's load drifts, keep the best
        for step in ("build", "encode") if rep == 0 else ("encode", "build"):
            if step == "build":
                shutil.rmtree(index, ignore_errors=True)
                builds.append(run_worker("build", {"corpus": str(corpus), "index": str(index),
                                                   "backend": backend}))
            else:
                raws.append(run_worker("encode", {"texts": embed_texts(index), "backend": backend}))
    first = min(builds, key=lambda b: b["seconds"])
    first["rss_mib"] = max(b["rss_mib"] for b in builds)
    raw = min(raws, key=lambda x: x["seconds"])
    raw["rss_mib"] = max(x["rss_mib"] for x in raws)
    log(f"build {first['chunks']} chunks {first['seconds']:.1f}s, raw encode {raw['seconds']:.1f}s")
    embedder = Embedder(backend=backend)
    embedder.model  # noqa: B018
    start = time.perf_counter()
    unchanged = build_index(corpus, index, embedder=embedder)
    unchanged_s = time.perf_counter() - start
    doc = sorted(corpus.glob("*.md"))[len(list(corpus.glob("*.md"))) // 2]
    doc.write_text(doc.read_text("utf-8").rstrip("\n") + " This sentence was added.\n", "utf-8")
    start = time.perf_counter()
    changed = build_index(corpus, index, embedder=embedder)
    changed_s = time.perf_counter() - start
    doc_chunks = next(d["chunks"] for d in manifest(index)["documents"] if d["path"] == doc.name)
    return {
        "backend": backend, "documents": first["documents"], "chunks": first["chunks"],
        "build_s": first["seconds"], "build_chunks_per_s": first["chunks"] / first["seconds"],
        "encode_s": raw["seconds"], "encode_chunks_per_s": raw["n"] / raw["seconds"],
        "build_rss_mib": first["rss_mib"], "encode_rss_mib": raw["rss_mib"],
        "unchanged_s": unchanged_s, "unchanged_embedded": unchanged.embedded,
        "one_changed_s": changed_s, "one_changed_embedded": changed.embedded,
        "one_changed_doc_chunks": doc_chunks,
    }


def part(work: Path, backend: str, large: str, quick: bool, args) -> dict:
    """(b), (d), (e): the shortest answers of medquad-full, one file each (>= 1,000 documents)."""
    docs = 200 if quick else 1000
    rows = read_jsonl(SHARED / "medquad-full" / "corpus.jsonl")
    keep = {r["_id"] for r in sorted(rows, key=lambda r: (len(r["text"]), r["_id"]))[:docs]}
    corpus = work / "build-corpus"
    corpus.mkdir()
    for row in rows:
        if row["_id"] in keep:
            text = f"# {row['title']}\n\n{row['text']}\n"
            (corpus / f"{row['_id']}.md").write_text(text, "utf-8")
    return build_and_rebuild(corpus, work / "index-build", backend)
