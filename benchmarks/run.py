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
    """Write the BEIR corpus as one Markdown file per answer (title as heading); returns ids."""
    dest.mkdir(parents=True, exist_ok=True)
    ids = []
    for row in read_jsonl(SHARED / name / "corpus.jsonl")[:limit]:
        (dest / f"{row['_id']}.md").write_text(f"# {row['title']}\n\n{row['text']}\n", "utf-8")
        ids.append(row["_id"])
    return ids


def embed_texts(index_dir: Path) -> list[str]:
    """The exact texts a build embedded, in chunk order."""
    from qa import store
    from qa.chunking import embed_text

    stored = store.load(index_dir)
    titles = {d["path"]: d["title"] for d in stored.manifest["documents"]}
    return [embed_text(c.section, titles[c.doc], c.text) for c in stored.chunks]


def measured_process(cmd: list[str], stdin_text: str = "", env: dict | None = None) -> dict:
    """Run a process; wall seconds, peak RSS (MiB) and output, from wait4 on that very process."""
    with tempfile.TemporaryFile("w+") as fin, tempfile.TemporaryFile("w+") as fout, \
            tempfile.TemporaryFile("w+") as ferr:
        fin.write(stdin_text)
        fin.seek(0)
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=fin, stdout=fout, stderr=ferr, env=env, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        fout.seek(0)
        ferr.seek(0)
        out, err = fout.read(), ferr.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed ({proc.returncode}): {err[-2000:]}")
    return {"seconds": wall, "rss_mib": usage.ru_maxrss / 1024, "stdout": out}


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
    from qa.embedding import Embedder

    embedder = Embedder(backend=payload["backend"], batch_size=payload.get("batch_size", 32))
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

    from qa import embedding, onnx_model
    from qa.embedding import Embedder

    out: dict = {"encode": [], "query": [], "faiss": []}
    threads = sorted({1, os.cpu_count() or 1})
    batches = [16, 32, 64] if not quick else [16, 32]
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
                for _ in range(2):
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

    from qa.search import Searcher

    searcher = Searcher(index_dir)
    embedder = searcher.embedder
    flat = faiss.IndexFlatIP(searcher.stored.vectors.shape[1])
    flat.add(np.ascontiguousarray(searcher.stored.vectors))

    def floor(q: str) -> None:
        flat.search(embedder.encode([q]), K)

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
        "mode": getattr(searcher, "mode", "dense"),
        "p50_ms": pct(lib, 50) * 1e3, "p95_ms": pct(lib, 95) * 1e3,
        "floor_p50_ms": pct(base, 50) * 1e3, "floor_p95_ms": pct(base, 95) * 1e3,
    }


def build_and_rebuild(corpus: Path, index: Path, backend: str) -> dict:
    """(b) build throughput vs raw encode, (d) rebuilds, (e) build RSS; one corpus."""
    from qa.build import build_index
    from qa.embedding import Embedder

    shutil.rmtree(index, ignore_errors=True)
    first = run_worker("build", {"corpus": str(corpus), "index": str(index), "backend": backend})
    texts = embed_texts(index)
    raw = run_worker("encode", {"texts": texts, "backend": backend})
    log(f"build {first['chunks']} chunks in {first['seconds']:.1f}s; raw encode {raw['seconds']:.1f}s")
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
        "documents": first["documents"], "chunks": first["chunks"],
        "build_s": first["seconds"], "build_chunks_per_s": first["chunks"] / first["seconds"],
        "encode_s": raw["seconds"], "encode_chunks_per_s": raw["n"] / raw["seconds"],
        "build_rss_mib": first["rss_mib"], "encode_rss_mib": raw["rss_mib"],
        "unchanged_s": unchanged_s, "unchanged_embedded": unchanged.embedded,
        "one_changed_s": changed_s, "one_changed_embedded": changed.embedded,
        "one_changed_doc_chunks": doc_chunks,
    }


def _manifest(index: Path) -> dict:
    from qa import store

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
    from qa.search import Searcher

    searcher = Searcher(index)
    total = 0.0
    for q in queries:
        ranked: list[str] = []
        for hit in searcher.search(q["text"], 50):
            doc = Path(hit.doc).stem
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
    from qa.embedding import Embedder

    corpus = work / f"{name}-corpus"
    ids = set(write_medquad(name, corpus, limit))
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
    for backend in ("torch", "onnx", "onnx-int8"):
        start = time.perf_counter()
        embedder = Embedder(backend=backend)
        embedder.model  # noqa: B018 - export (first time only) + load
        load_s = time.perf_counter() - start
        index = work / f"{name}-{backend}"
        s = build_index(corpus, index, embedder=embedder)  # fresh folder: everything embedded
        ndcg = ndcg_at_10(index, queries, qrels)
        rows.append({"backend": backend, "chunks": s.chunks, "build_s": s.seconds,
                     "chunks_per_s": s.chunks / s.seconds, "load_s": load_s,
                     "ndcg10": ndcg, "queries": len(queries)})
        log(f"{backend}: {s.chunks / s.seconds:.1f} chunks/s, nDCG@10 {ndcg:.4f}")
    return rows


def ann_sweep(vectors: np.ndarray, queries: np.ndarray, label: str, kinds: list[str],
              n_latency: int = 200) -> list[dict]:
    """Index kinds on one vector set: build time, memory, p50 latency, recall@10 vs exact."""
    import faiss

    from qa import vector_index

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
        recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]))
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
            for nprobe in sorted({8, 16, 32, 64, 128, default["nprobe"]}):
                if nprobe <= index.nlist:
                    index.nprobe = nprobe
                    measure(index, used, {"nlist": index.nlist, "nprobe": nprobe,
                                          "default": nprobe == default["nprobe"]}, build_s, memory)
        elif used == "hnsw":
            for ef in sorted({32, 64, 128, default["efSearch"]}):
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


def large_corpora(index_dir: Path, queries: list[str], sizes: list[int]) -> dict:
    """ANN benchmark on the real chunk vectors and on synthetic sets of growing size."""
    from qa import store
    from qa.embedding import Embedder

    stored = store.load(index_dir)
    real = np.ascontiguousarray(stored.vectors)
    embedder = Embedder(backend=stored.manifest["model"].get("backend", "torch"))
    q = embedder.encode(queries)
    rows = ann_sweep(real, q, "real", ["flat", "ivf", "hnsw"])
    for n in sizes:
        data = synthetic(real, n + 1000, seed=n)
        vectors, sq = data[:n], data[n:]
        kinds = ["flat", "ivf"] + (["hnsw"] if n <= 200_000 else [])
        rows += ann_sweep(vectors, sq, "synthetic", kinds, n_latency=100 if n > 200_000 else 200)
        del data, vectors, sq
    return {"rows": rows}


# ---------------------------------------------------------------- the report


def environment() -> dict:
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
        "load_average_start": os.getloadavg()[0],
    }


def markdown(r: dict, command: str) -> str:
    """The README table: each figure, its floor, the ratio and the target."""
    env = r["environment"]
    lines = [
        f"`{command}` on {env['date']} (commit {env['commit']}), {env['cpus']} cores, "
        f"load average {env['load_average_start']:.1f} at start / "
        f"{env['load_average_end']:.1f} at end (the machine is shared), torch {env['torch']}, "
        f"onnxruntime {env['onnxruntime']}, faiss {env['faiss']}.",
        "",
        "| measure | qa | floor (same run) | ratio | target | holds |",
        "|---|---|---|---|---|---|",
    ]

    def row(name, value, floor, rat, target, ok):
        lines.append(f"| {name} | {value} | {floor} | {rat} | {target} | {'yes' if ok else 'NO'} |")

    for key, label in (("report", "the report"), ("large", r["large_name"])):
        w = r["warm"][key]
        for p in ("p50", "p95"):
            rr = ratio(w[f"{p}_ms"], w[f"floor_{p}_ms"])
            row(f"(a) warm query {p}, {label} ({w['chunks']} chunks, {w['mode']}, "
                f"{w['backend']}, {w['queries']} queries)",
                f"{w[f'{p}_ms']:.1f} ms", f"{w[f'floor_{p}_ms']:.1f} ms encode + exact search",
                f"{rr:.2f}x", "<= 1.3x", rr <= 1.3)
    b = r["build"]
    rr = ratio(b["build_chunks_per_s"], b["encode_chunks_per_s"])
    row(f"(b) build throughput, first {b['documents']} {r['large_name']} answers "
        f"({b['chunks']} chunks, {r['backend']})", f"{b['build_chunks_per_s']:.1f} chunks/s",
        f"{b['encode_chunks_per_s']:.1f} chunks/s raw encode", f"{rr:.2f}x", ">= 0.9x", rr >= 0.9)
    c = r["cold"]
    rr = ratio(c["ask_s"], c["floor_s"])
    row(f"(c) cold `qa ask` ({c['backend']}, median of {c['reps']})", f"{c['ask_s']:.2f} s",
        f"{c['floor_s']:.2f} s import sentence_transformers + load model", f"{rr:.2f}x",
        "<= 1.2x", rr <= 1.2)
    for key, label in (("unchanged_s", "nothing changed"), ("one_changed_s", "one document changed")):
        rr = ratio(b[key], b["build_s"])
        emb = b["unchanged_embedded" if key == "unchanged_s" else "one_changed_embedded"]
        row(f"(d) rebuild, {label}, {b['documents']} documents ({emb} chunks embedded)",
            f"{b[key]:.2f} s", f"{b['build_s']:.1f} s first build", f"{rr:.3f}x", "<= 0.10x",
            rr <= 0.10)
    row("(e) peak RSS, build process", f"{b['build_rss_mib']:.0f} MiB",
        f"{b['encode_rss_mib']:.0f} MiB load model + encode", 
        f"{ratio(b['build_rss_mib'], b['encode_rss_mib']):.2f}x", "-", True)
    s = r["serving"]
    row(f"(e) peak RSS, serving process (`qa ask`, {r['large_name']}, {s['questions']} questions)",
        f"{s['rss_mib']:.0f} MiB", f"{c['floor_rss_mib']:.0f} MiB load model",
        f"{ratio(s['rss_mib'], c['floor_rss_mib']):.2f}x", "-", True)

    lines += ["", f"Backends on {r['backend_set']} (fresh build each; nDCG@10 of the library search, "
              f"answers as documents):", "",
              "| backend | load/export s | build chunks/s | speed vs torch | nDCG@10 | vs torch |",
              "|---|---|---|---|---|---|"]
    torch_row = next(x for x in r["backends"] if x["backend"] == "torch")
    for x in r["backends"]:
        lines.append(f"| {x['backend']} | {x['load_s']:.1f} | {x['chunks_per_s']:.1f} | "
                     f"{ratio(x['chunks_per_s'], torch_row['chunks_per_s']):.2f}x | "
                     f"{x['ndcg10']:.4f} | {x['ndcg10'] - torch_row['ndcg10']:+.4f} |")

    t = r["tune"]
    lines += ["", "Tuning (chunks/s encoding a fixed sample; query = one short question):", "",
              "| backend | threads | " + " | ".join(
                  f"batch {b}" for b in sorted({e['batch'] for e in t['encode']})) +
              " | query p50 |", "|---|---|" + "---|" * (1 + len({e['batch'] for e in t['encode']}))]
    for backend in ("torch", "onnx"):
        for th in sorted({e["threads"] for e in t["encode"]}):
            cells = [f"{e['chunks_per_s']:.1f}" for e in t["encode"]
                     if e["backend"] == backend and e["threads"] == th]
            qp = next(e["p50_ms"] for e in t["query"] if e["backend"] == backend and e["threads"] == th)
            lines.append(f"| {backend} | {th} | " + " | ".join(cells) + f" | {qp:.1f} ms |")
    lines.append("")
    lines.append("FAISS exact search, one query, 35,000 vectors: " + ", ".join(
        f"{f['threads']} thread(s) {f['p50_ms']:.2f} ms" for f in t["faiss"]))

    if r.get("ann"):
        lines += ["", "Vector index kinds (recall@10 against exact search; p50 of one query, "
                  "one FAISS thread; memory = index size):", "",
                  "| vectors | n | kind | parameters | build s | memory MiB | p50 ms | recall@10 |",
                  "|---|---|---|---|---|---|---|---|"]
        for a in r["ann"]["rows"]:
            params = ", ".join(f"{k}={a[k]}" for k in ("nlist", "nprobe", "efSearch") if k in a)
            params += " (default)" if a.get("default") and a["kind"] != "flat" else ""
            lines.append(f"| {a['set']} | {a['n']:,} | {a['kind']} | {params or '-'} | "
                         f"{a['build_s']:.1f} | {a['memory_mib']:.0f} | {a['p50_ms']:.2f} | "
                         f"{a['recall10']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small samples (minutes)")
    parser.add_argument("--large", action="store_true", help="add the 1,000,000-vector benchmark")
    parser.add_argument("--backend", default=None, help="backend for (a)-(e) (default: qa's)")
    parser.add_argument("--skip-ann", action="store_true", help="skip the vector index benchmark")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(*args.worker)
        return 0

    from qa import config
    from qa.build import build_index

    backend = config.backend(args.backend)
    quick = args.quick
    RESULTS.mkdir(parents=True, exist_ok=True)
    r: dict = {"environment": environment(), "quick": quick, "backend": backend}
    large = "medquad-small" if quick else "medquad-full"
    r["large_name"] = large
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp:
        work = Path(tmp)
        log("tuning threads and batch size")
        sample = embed_texts_sample(work, 48 if quick else 192)
        r["tune"] = tune(sample, quick)

        log("(a) warm queries")
        report_index = work / "index-report"
        build_index(REPORT_CORPUS, report_index, backend=backend)
        report_qs = [q["question"] for q in read_jsonl(REPORT_QUESTIONS)] * (2 if quick else 6)
        large_index = RESULTS / f"index-{large}"
        large_corpus = work / f"{large}-corpus"
        write_medquad(large, large_corpus)
        s = build_index(large_corpus, large_index, backend=backend, progress=sys.stderr.isatty())
        log(f"{large}: {s.line()}")
        rng = np.random.default_rng(7)
        all_q = [q["text"] for q in read_jsonl(SHARED / large / "queries.jsonl")]
        picked = [all_q[i] for i in rng.choice(len(all_q), size=1000, replace=False)]
        r["warm"] = {"report": warm_queries(report_index, report_qs),
                     "large": warm_queries(large_index, picked[: 60 if quick else 300])}

        log("(b) build throughput, (d) rebuilds, (e) build RSS")
        docs = 200 if quick else 1000
        corpus = work / "build-corpus"
        write_medquad("medquad-full", corpus, docs)
        r["build"] = build_and_rebuild(corpus, work / "index-build", backend)

        log("(c) cold ask, (e) serving RSS")
        r["cold"] = cold_ask(report_index, 3 if quick else 5)
        r["serving"] = serving_rss(large_index, picked[:50])

        log("backends")
        r["backend_set"] = "the first 150 medquad-small answers" if quick else "medquad-small"
        r["backends"] = backends(work, "medquad-small", 150 if quick else None,
                                 100 if quick else None)

        if not args.skip_ann:
            log("vector index kinds")
            sizes = [50_000] if quick else [50_000, 200_000]
            if args.large:
                sizes.append(1_000_000)
            r["ann"] = large_corpora(large_index, picked, sizes)
    r["environment"]["load_average_end"] = os.getloadavg()[0]
    command = "python benchmarks/run.py" + (" --quick" if quick else "") + \
        (" --large" if args.large else "")
    text = markdown(r, command)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in ("latest", stamp):
        (RESULTS / f"{name}.json").write_text(json.dumps(r, indent=2), "utf-8")
        (RESULTS / f"{name}.md").write_text(text, "utf-8")
    print(text)
    return 0


def embed_texts_sample(work: Path, n: int) -> list[str]:
    """A fixed sample of real chunk texts (every k-th chunk of medquad-small's first 300)."""
    from qa.chunking import chunk_documents, embed_text
    from qa.embedding import Embedder
    from qa.loaders import load_corpus

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
