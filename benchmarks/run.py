#!/usr/bin/env python
"""Measure `qa` on this machine: every figure beside a floor measured in the same run.

    python benchmarks/run.py             # full run (the first one embeds medquad-full: long)
    python benchmarks/run.py --quick     # small samples, a few minutes; medquad-small stands in
    python benchmarks/run.py --large     # adds the 1,000,000-vector ANN benchmark

Writes benchmarks/results/latest.json and latest.md (plus a dated copy of each). The
medquad-full index is kept in benchmarks/results/index-medquad-full/ and rebuilt incrementally,
so only the first run pays for embedding it. Run it under `nice` on a shared machine.

Data: MedQuAD (Ben Abacha and Demner-Fushman, BMC Bioinformatics 20:511, 2019; CC BY 4.0), read
from ../shared/benchmarks at run time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
# the data sets lie in shared/ beside the clone (a worktree one level deeper also finds them)
SHARED = next((p / "shared" / "benchmarks" for p in (ROOT.parent, ROOT.parent.parent)
               if (p / "shared" / "benchmarks").is_dir()), ROOT.parent / "shared" / "benchmarks")
REPORT_CORPUS = ROOT / "corpus"
REPORT_QUESTIONS = ROOT / "tests" / "data" / "report_questions.jsonl"
ASK = "What causes chronic mid back pain?"
K = 5

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(ROOT / "src"))


# ---------------------------------------------------------------- small helpers


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of values."""
    return float(np.percentile(np.asarray(values), q))


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def write_medquad(name: str, dest: Path, limit: int | None = None) -> list[str]:
    """Write the BEIR corpus as one Markdown file per answer (title as heading); returns the
    file names. medquad-full repeats some ids (16,407 answers, 12,133 ids): every answer is
    kept, a repeated id gets a numbered file."""
    dest.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    seen: dict[str, int] = {}
    for row in read_jsonl(SHARED / name / "corpus.jsonl")[:limit]:
        seen[row["_id"]] = seen.get(row["_id"], 0) + 1
        stem = row["_id"] if seen[row["_id"]] == 1 else f"{row['_id']}~{seen[row['_id']]}"
        (dest / f"{stem}.md").write_text(f"# {row['title']}\n\n{row['text']}\n", "utf-8")
        names.append(stem)
    return names


def embed_texts(index_dir: Path) -> list[str]:
    """The exact texts a build embedded, in chunk order."""
    from qa.ingest.chunking import embed_text
    from qa.store import local as store

    stored = store.load(index_dir)
    titles = {d["path"]: d["title"] for d in stored.manifest["documents"]}
    return [embed_text(c.section, titles[c.doc], c.text) for c in stored.chunks]


# Linux keeps a process's peak RSS across exec, and a child made by fork or vfork starts from its
# parent's: so a small Python process launches the measured one and reports its wait4 figures.
_LAUNCHER = """import json, os, sys, time
start = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    json.dump({"seconds": time.perf_counter() - start, "rss_kib": usage.ru_maxrss,
               "code": os.waitstatus_to_exitcode(status)}, fh)
"""


def measured_process(cmd: list[str], stdin_text: str = "", env: dict | None = None) -> dict:
    """Run a process; its wall seconds, peak RSS (MiB) and standard output."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "usage.json"
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, str(report), *cmd],
                              input=stdin_text, capture_output=True, text=True, env=env)
        usage = json.loads(report.read_text()) if report.exists() else {"code": proc.returncode}
    if proc.returncode != 0 or usage["code"] != 0:
        raise RuntimeError(f"{cmd[:4]} failed ({usage['code']}): {proc.stderr[-2000:]}")
    return {"seconds": usage["seconds"], "rss_mib": usage["rss_kib"] / 1024, "stdout": proc.stdout}


def worker(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--worker", *args]


def run_worker(mode: str, payload: dict) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(payload, fh)
    try:
        got = measured_process(worker(mode, fh.name))
    finally:
        os.unlink(fh.name)
    result = json.loads(got["stdout"].strip().splitlines()[-1])
    result["rss_mib"] = got["rss_mib"]
    return result


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


# ---------------------------------------------------------------- the measurements


def tune(sample: list[str], quick: bool) -> dict:
    """Threads and batch size for each backend, and FAISS threads, on this machine."""
    import faiss
    import torch

    from qa.embed import embedder as embedding
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
    torch.set_num_threads(embedding.config.threads())
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
    faiss.omp_set_num_threads(embedding.config.threads())
    return out


def warm_queries(index_dir: Path, questions: list[str]) -> dict:
    """(a) library search vs the floor: encode the question + exact FAISS search, interleaved."""
    import faiss

    from qa.retrieve.searcher import Searcher
    from qa.store import faiss_index as vector_index

    searcher = Searcher(index_dir)
    embedder = searcher.embedder
    flat = faiss.IndexFlatIP(searcher.stored.vectors.shape[1])
    flat.add(np.ascontiguousarray(searcher.stored.vectors))

    def floor(q: str) -> None:  # one FAISS thread, as the library searches
        vector_index.search(flat, embedder.encode([q]), K)

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
        "chunks": len(searcher.chunks), "queries": len(questions),
        "index_type": searcher.manifest.get("index_type"),
        "backend": embedder.backend,
        "mode": searcher.ask(questions[0], K).mode,
        "p50_ms": pct(lib, 50) * 1e3, "p95_ms": pct(lib, 95) * 1e3,
        "floor_p50_ms": pct(base, 50) * 1e3, "floor_p95_ms": pct(base, 95) * 1e3,
    }


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
    doc_chunks = next(d["chunks"] for d in _manifest(index)["documents"] if d["path"] == doc.name)
    return {
        "backend": backend, "documents": first["documents"], "chunks": first["chunks"],
        "build_s": first["seconds"], "build_chunks_per_s": first["chunks"] / first["seconds"],
        "encode_s": raw["seconds"], "encode_chunks_per_s": raw["n"] / raw["seconds"],
        "build_rss_mib": first["rss_mib"], "encode_rss_mib": raw["rss_mib"],
        "unchanged_s": unchanged_s, "unchanged_embedded": unchanged.embedded,
        "one_changed_s": changed_s, "one_changed_embedded": changed.embedded,
        "one_changed_doc_chunks": doc_chunks,
    }


def _manifest(index: Path) -> dict:
    from qa.store import local as store

    return store.read_manifest(index)[1]


def cold_ask(report_index: Path, reps: int) -> dict:
    """(c) `qa ask` from process start to answer vs importing sentence-transformers + loading."""
    from qa import config

    _, path = config.resolve_model(config.PACKAGED_MODEL)
    floor_code = ("from sentence_transformers import SentenceTransformer\n"
                  f"SentenceTransformer({path!r}, device='cpu')")
    ask = [sys.executable, "-m", "qa", "ask", ASK, "--index", str(report_index), "-k", str(K)]
    floor_cmd = [sys.executable, "-c", floor_code]
    measured_process(ask)  # warm the page cache for both
    measured_process(floor_cmd)
    runs: dict[str, list[dict]] = {"ask": [], "floor": []}
    for i in range(reps):
        pair = [("ask", ask), ("floor", floor_cmd)]
        for name, cmd in pair if i % 2 else pair[::-1]:
            runs[name].append(measured_process(cmd))
    med = {n: statistics.median(r["seconds"] for r in v) for n, v in runs.items()}
    rss = {n: max(r["rss_mib"] for r in v) for n, v in runs.items()}
    return {"reps": reps, "ask_s": med["ask"], "floor_s": med["floor"],
            "ask_rss_mib": rss["ask"], "floor_rss_mib": rss["floor"],
            "backend": _manifest(report_index)["model"].get("backend", "torch")}


def serving_rss(index: Path, questions: list[str]) -> dict:
    """(e) peak RSS of a process that loads an index and answers questions (`qa ask` batch)."""
    got = measured_process([sys.executable, "-m", "qa", "ask", "--index", str(index), "--json"],
                           stdin_text="\n".join(questions) + "\n")
    return {"rss_mib": got["rss_mib"], "questions": len(questions), "seconds": got["seconds"]}


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


def ann_sweep(vectors: np.ndarray, queries: np.ndarray, label: str, kinds: list[str],
              n_latency: int = 200) -> list[dict]:
    """Index kinds on one vector set: build time, memory, p50 latency, recall@10 vs exact."""
    import faiss

    from qa.store import faiss_index as vector_index

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
        index, used = vector_index.make_index(vectors, kind)
        build_s = time.perf_counter() - start
        memory = len(faiss.serialize_index(index)) if used != "flat" else vectors.nbytes
        default = vector_index.search_params(index)
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


def synthetic(real: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n normalised vectors shaped like real embeddings, not trivially clustered.

    A Gaussian mixture in the principal subspace of the real chunk vectors: 10,000 component
    centres drawn from N(mean, real covariance), each point = centre + 0.5 x a second draw from
    the real covariance, plus isotropic noise at the real residual variance; then normalised.
    """
    rng = np.random.default_rng(seed)
    mean = real.mean(axis=0)
    _, s, vt = np.linalg.svd(real - mean, full_matrices=False)
    rank = 128
    scale = (s[:rank] / math.sqrt(len(real) - 1)).astype(np.float32)
    basis = vt[:rank].astype(np.float32)
    residual = float(np.sqrt((s[rank:] ** 2).sum() / (len(real) - 1) / real.shape[1]))
    centres = mean + (rng.standard_normal((10_000, rank), dtype=np.float32) * scale) @ basis
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        z = rng.standard_normal((m, rank), dtype=np.float32) * (0.5 * scale)
        x = centres[rng.integers(0, len(centres), m)] + z @ basis
        x += rng.standard_normal(x.shape, dtype=np.float32) * residual
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


# ---------------------------------------------------------------- the report


def environment() -> dict:
    """Versions and the commit measured."""
    import faiss
    import onnxruntime
    import sentence_transformers
    import torch

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"), "commit": commit, "cpus": os.cpu_count(),
        "python": platform.python_version(), "torch": torch.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "onnxruntime": onnxruntime.__version__, "faiss": faiss.__version__,
        "build_threads": int(os.environ.get("QA_THREADS", "0")) or None,
    }


def markdown(r: dict, command: str) -> str:
    """The README tables: each figure, its floor (same part of the same run), ratio, target."""
    env = r["environment"]
    ran = r.get("ran", {})
    lines = [
        f"`{command}`: {env['cpus']} cores, torch {env['torch']}, onnxruntime "
        f"{env['onnxruntime']}, faiss {env['faiss']}, sentence-transformers "
        f"{env['sentence_transformers']}; questions run on one thread. Each part with its "
        "date, commit, the machine's load average (start/end; the machine is shared with "
        "other jobs) and the threads builds ran on:",
        "",
    ]
    for part, info in ran.items():
        lines.append(f"- {part}: {info['date']}, {info['commit']}, load "
                     f"{info['load_average'][0]:.1f}/{info['load_average'][1]:.1f}, "
                     f"{info.get('build_threads') or '?'} build thread(s)")
    lines += ["", "| measure | qa | floor (same run) | ratio | target | holds |",
              "|---|---|---|---|---|---|"]

    large = r["large_name"]

    def row(name, value, floor, rat, target, ok):
        verdict = "-" if ok is None else ("yes" if ok else "NO")
        lines.append(f"| {name} | {value} | {floor} | {rat} | {target} | {verdict} |")

    if "warm" in r:
        for key, label in (("report", "the report"), ("large", r["warm"].get("set", large))):
            w = r["warm"][key]
            for p in ("p50", "p95"):
                rr = ratio(w[f"{p}_ms"], w[f"floor_{p}_ms"])
                row(f"(a) warm query {p}, {label} ({w['chunks']:,} chunks, {w['mode']} search, "
                    f"{w['backend']}, {w['queries']} queries)",
                    f"{w[f'{p}_ms']:.1f} ms",
                    f"{w[f'floor_{p}_ms']:.1f} ms (encode + exact search)",
                    f"{rr:.2f}x", "<= 1.3x", rr <= 1.3)
    if "build" in r:
        b = r["build"]
        rr = ratio(b["build_chunks_per_s"], b["encode_chunks_per_s"])
        row(f"(b) build throughput, {b['documents']:,} shortest medquad-full answers "
            f"({b['chunks']:,} chunks, {b['backend']})", f"{b['build_chunks_per_s']:.1f} chunks/s",
            f"{b['encode_chunks_per_s']:.1f} chunks/s (raw encode of the chunk texts)",
            f"{rr:.2f}x", ">= 0.9x", rr >= 0.9)
    if "cold" in r:
        c = r["cold"]
        rr = ratio(c["ask_s"], c["floor_s"])
        row(f"(c) cold `qa ask` ({c['backend']}, median of {c['reps']})", f"{c['ask_s']:.2f} s",
            f"{c['floor_s']:.2f} s (import sentence_transformers + load model)", f"{rr:.2f}x",
            "<= 1.2x", rr <= 1.2)
    if "build" in r:
        b = r["build"]
        for key, label, emb in (("unchanged_s", "nothing changed", "unchanged_embedded"),
                                ("one_changed_s", "one document changed", "one_changed_embedded")):
            rr = ratio(b[key], b["build_s"])
            row(f"(d) rebuild, {label}, {b['documents']:,} documents ({b[emb]} chunks embedded)",
                f"{b[key]:.2f} s", f"{b['build_s']:.1f} s (first build)", f"{rr:.3f}x",
                "<= 0.10x", rr <= 0.10)
        row("(e) peak RSS, build process", f"{b['build_rss_mib']:.0f} MiB",
            f"{b['encode_rss_mib']:.0f} MiB (load model + encode)",
            f"{ratio(b['build_rss_mib'], b['encode_rss_mib']):.2f}x", "-", None)
    if "warm" in r and "cold" in r:
        s = r["warm"]["serving"]
        row(f"(e) peak RSS, serving process (`qa ask`, {r['warm'].get('set', large)}, "
            f"{s['questions']} "
            "questions)", f"{s['rss_mib']:.0f} MiB",
            f"{r['cold']['floor_rss_mib']:.0f} MiB (load model)",
            f"{ratio(s['rss_mib'], r['cold']['floor_rss_mib']):.2f}x", "-", None)

    if "backends" in r:
        rows = r["backends"]["rows"]
        lines += ["", f"Backends on {r['backends']['set']} (a fresh build each; nDCG@10 of the "
                  "library search with answers as documents):", "",
                  "| backend | load (+ first export) s | build chunks/s | speed vs torch | "
                  "nDCG@10 | vs torch | max abs vector diff vs torch |",
                  "|---|---|---|---|---|---|---|"]
        base = next(x for x in rows if x["backend"] == "torch")
        for x in rows:
            lines.append(f"| {x['backend']} | {x['load_s']:.1f} | {x['chunks_per_s']:.1f} | "
                         f"{ratio(x['chunks_per_s'], base['chunks_per_s']):.2f}x | "
                         f"{x['ndcg10']:.4f} | {x['ndcg10'] - base['ndcg10']:+.4f} | "
                         f"{x['max_abs_diff']:.1e} |")

    if "tune" in r:
        t = r["tune"]
        batches = sorted({e["batch"] for e in t["encode"]})
        lines += ["", "Tuning: chunks/s encoding a fixed sample of real chunks (best of the "
                  "repetitions); query = one short question:", "",
                  "| backend | threads | " + " | ".join(f"batch {b}" for b in batches) +
                  " | query p50 |", "|---|---|" + "---|" * (1 + len(batches))]
        for be in ("torch", "onnx"):
            for th in sorted({e["threads"] for e in t["encode"]}):
                cells = [f"{e['chunks_per_s']:.1f}" for e in t["encode"]
                         if e["backend"] == be and e["threads"] == th]
                qp = next(e["p50_ms"] for e in t["query"]
                          if e["backend"] == be and e["threads"] == th)
                lines.append(f"| {be} | {th} | " + " | ".join(cells) + f" | {qp:.1f} ms |")
        lines += ["", "FAISS exact search of one query over 35,000 vectors: " + ", ".join(
            f"{f['threads']} thread(s) {f['p50_ms']:.2f} ms" for f in t["faiss"]) + "."]

    ann_rows = r.get("ann", {}).get("rows", []) + r.get("synthetic", {}).get("rows", [])
    if ann_rows:
        lines += ["", "Vector index kinds (recall@10 against exact search; p50 of one query "
                  "with one FAISS thread; memory = size of the index):", "",
                  "| vectors | n | kind | parameters | build s | memory MiB | p50 ms | recall@10 |",
                  "|---|---|---|---|---|---|---|---|"]
        for a in ann_rows:
            params = ", ".join(f"{k}={a[k]}" for k in ("nlist", "nprobe", "efSearch") if k in a)
            params += " (default)" if a.get("default") and a["kind"] != "flat" else ""
            lines.append(f"| {a['set']} | {a['n']:,} | {a['kind']} | {params or '-'} | "
                         f"{a['build_s']:.1f} | {a['memory_mib']:.0f} | {a['p50_ms']:.2f} | "
                         f"{a['recall10']:.3f} |")
    return "\n".join(lines) + "\n"


PARTS = ("tune", "warm", "build", "cold", "backends", "ann", "synthetic")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small samples (minutes)")
    parser.add_argument("--large", action="store_true", help="add the 1,000,000-vector benchmark")
    parser.add_argument("--backend", default=None, help="backend for (a)-(e) (default: qa's)")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help="comma-separated parts to run (default: all); the others are kept "
                        "from the previous results/latest.json")
    parser.add_argument("--large-set", default="medquad-full", choices=("medquad-full",
                        "medquad-small"), help="data set for (a), serving RSS and real vectors")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(*args.worker)
        return 0

    from qa import config

    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    backend = config.backend(args.backend)
    # one thread count for the whole run (qa picks it from the load, which the run itself
    # changes): a build and its floor must run on the same number of threads
    os.environ["QA_THREADS"] = str(config.threads())
    quick = args.quick
    RESULTS.mkdir(parents=True, exist_ok=True)
    latest = RESULTS / "latest.json"
    r: dict = json.loads(latest.read_text("utf-8")) if latest.exists() and parts != list(PARTS) \
        else {}
    large = "medquad-small" if quick else args.large_set
    r.update({"quick": quick, "backend": backend, "large_name": large})
    r.setdefault("ran", {})
    env = environment()
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp:
        work = Path(tmp)
        for part in parts:
            log(f"part {part}")
            load = os.getloadavg()[0]
            r[part] = globals()[f"part_{part}"](work, backend, large, quick, args)
            r["ran"][part] = {"date": time.strftime("%Y-%m-%d %H:%M"), "commit": env["commit"],
                              "load_average": [load, os.getloadavg()[0]],
                              "build_threads": env["build_threads"]}
            r["environment"] = env
            text = save(r, args, part)  # after each part, so a long run keeps what it measured
    print(text)
    return 0


def save(r: dict, args: argparse.Namespace, part: str) -> str:
    """Merge this part into latest.json (another run may have written other parts meanwhile),
    write latest.md and dated copies; returns the Markdown."""
    latest = RESULTS / "latest.json"
    if latest.exists() and args.parts != ",".join(PARTS):
        on_disk = json.loads(latest.read_text("utf-8"))
        for name in PARTS:
            if name in on_disk and name != part and \
                    on_disk["ran"][name]["date"] >= r.get("ran", {}).get(name, {}).get("date", ""):
                r[name] = on_disk[name]
                r["ran"][name] = on_disk["ran"][name]
    command = "python benchmarks/run.py" + (" --quick" if args.quick else "") + \
        (" --large" if args.large else "") + \
        (f" --large-set {args.large_set}" if args.large_set != "medquad-full" else "")
    text = markdown(r, command)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in ("latest", stamp):
        (RESULTS / f"{name}.json").write_text(json.dumps(r, indent=2), "utf-8")
        (RESULTS / f"{name}.md").write_text(text, "utf-8")
    return text


def large_index(work: Path, backend: str, large: str) -> Path:
    """The medquad index, kept between runs and rebuilt incrementally (first run: slow)."""
    from qa.build import build_index

    index = RESULTS / f"index-{large}"
    corpus = work / f"{large}-corpus"
    if not corpus.exists():
        write_medquad(large, corpus)
    s = build_index(corpus, index, backend=backend, progress=sys.stderr.isatty(), wait=True)
    log(f"{large}: {s.line()}")
    return index


def sample_queries(large: str, n: int) -> list[str]:
    """A fixed random sample of the data set's questions."""
    all_q = [q["text"] for q in read_jsonl(SHARED / large / "queries.jsonl")]
    rng = np.random.default_rng(7)
    return [all_q[i] for i in rng.choice(len(all_q), size=min(n, len(all_q)), replace=False)]


def part_tune(work, backend, large, quick, args) -> dict:
    return tune(embed_texts_sample(work, 32 if quick else 48), quick)


def part_warm(work, backend, large, quick, args) -> dict:
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


def part_build(work, backend, large, quick, args) -> dict:
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


def part_cold(work, backend, large, quick, args) -> dict:
    from qa.build import build_index

    report_index = work / "index-report-cold"
    build_index(REPORT_CORPUS, report_index, backend=backend)
    return cold_ask(report_index, 3 if quick else 5)


def part_backends(work, backend, large, quick, args) -> dict:
    n = 100 if quick else 150
    return {"set": f"the first {n} medquad-small answers and their questions",
            "rows": backends(work, "medquad-small", n, None)}


def part_ann(work, backend, large, quick, args) -> dict:
    """Index kinds on the real chunk vectors of the large set, with its own questions."""
    from qa.embed.embedder import Embedder
    from qa.store import local as store

    stored = store.load(large_index(work, backend, large))
    embedder = Embedder(backend=stored.manifest["model"].get("backend", "torch"))
    queries = embedder.encode(sample_queries(large, 1000))
    return {"rows": ann_sweep(np.ascontiguousarray(stored.vectors), queries, f"real {large}",
                              ["flat", "ivf", "hnsw"])}


def part_synthetic(work, backend, large, quick, args) -> dict:
    """Index kinds on synthetic sets of growing size, shaped like medquad-small's vectors."""
    from qa.store import local as store

    real = np.ascontiguousarray(store.load(large_index(work, backend, "medquad-small")).vectors)
    sizes = [20_000, 50_000] if quick else [20_000, 50_000, 200_000]
    if args.large:
        sizes.append(1_000_000)
    rows = []
    for n in sizes:
        data = synthetic(real, n + 1000, seed=n)
        kinds = ["flat", "ivf"] + (["hnsw"] if n <= 50_000 else [])
        rows += ann_sweep(data[:n], data[n:], "synthetic", kinds,
                          n_latency=100 if n > 200_000 else 200)
        del data
    return {"rows": rows, "fitted_on": "medquad-small"}


def embed_texts_sample(work: Path, n: int) -> list[str]:
    """A fixed sample of real chunk texts (every k-th chunk of medquad-small's first 300)."""
    from qa.embed.embedder import Embedder
    from qa.ingest.chunking import chunk_documents, embed_text
    from qa.ingest.loaders import load_corpus

    corpus = work / "sample-corpus"
    write_medquad("medquad-small", corpus, 300)
    embedder = Embedder(backend="torch")
    docs = load_corpus(corpus).documents
    titles = {d.path: d.title for d in docs}
    chunks = chunk_documents(docs, embedder.count_tokens, embedder.max_tokens)
    texts = [embed_text(c.section, titles[c.doc], c.text) for c in chunks]
    step = max(1, len(texts) // n)
    return texts[::step][:n]


if __name__ == "__main__":
    sys.exit(main())
