"""What the benchmark parts share: paths, small statistics, the MedQuAD data, measured processes.

Importing this module puts ../src on the path and keeps the Hugging Face hub offline, so every
part measures the `qa` of this checkout with the packaged model. It imports only the standard
library and numpy: `qa`, torch and faiss are imported inside the functions that need them, so
a worker process (see `measured_process`) holds no more than the job it measures.
"""

from __future__ import annotations

import json
import os
import platform
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
ENTRY = ROOT / "benchmarks" / "run.py"  # runs a worker job with --worker
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


# ---------------------------------------------------------------- data and indexes


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


def sample_queries(large: str, n: int) -> list[str]:
    """A fixed random sample of the data set's questions."""
    all_q = [q["text"] for q in read_jsonl(SHARED / large / "queries.jsonl")]
    rng = np.random.default_rng(7)
    return [all_q[i] for i in rng.choice(len(all_q), size=min(n, len(all_q)), replace=False)]


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


def manifest(index: Path) -> dict:
    """The live build's manifest of an index folder (no vectors are read)."""
    from qa.store import open_store

    return open_store(index).manifest()


def embed_texts(index: Path) -> list[str]:
    """The exact texts a build embedded, in chunk order."""
    from qa.ingest.chunking import embed_text
    from qa.store import open_store

    generation = open_store(index).open()
    titles = {d["path"]: d["title"] for d in generation.manifest["documents"]}
    return [embed_text(c.section, titles[c.doc], c.text) for c in generation.chunks]


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


# ---------------------------------------------------------------- measured processes


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
    """The command line of a worker job (`run.py --worker MODE PAYLOAD_FILE`)."""
    return [sys.executable, str(ENTRY), "--worker", *args]


def run_worker(mode: str, payload: dict) -> dict:
    """Run a worker job in its own measured process: the JSON line it prints, plus its peak RSS.
    The jobs themselves are `build_bench.worker_main`."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(payload, fh)
    try:
        got = measured_process(worker(mode, fh.name))
    finally:
        os.unlink(fh.name)
    result = json.loads(got["stdout"].strip().splitlines()[-1])
    result["rss_mib"] = got["rss_mib"]
    return result


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
