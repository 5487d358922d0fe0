#!/usr/bin/env python
"""A `--ray` build against a plain build of the same corpus, in one run, on this machine.

    python benchmarks/ray_build.py                  # medquad-full: 16,407 answers (long)
    python benchmarks/ray_build.py --limit 2000     # a fixed subset: the first 2,000 answers

Each answer becomes one Markdown file (its title as the heading), as in the other benchmarks.
Three builds: a plain build into a fresh index (`qa.build.build_index`, on `--threads` model
threads, default every core: what `qa build` picks on a quiet machine), a Ray build into another
fresh index on a local Ray of `--workers` CPUs (`qa.distributed.build_index`), and that Ray
build again with nothing changed (every vector reused: what a build costs besides the model, and
how fast the driver and the store take passages, the limit of a large cluster). Each build's
phases are timed from its progress callback: before embedding (model load; Ray and its workers;
reading, chunking, finding reusable vectors), embedding (passages go to the store's writer as
they are embedded), and after (the store's commit: FAISS and BM25 built, files flushed; and
leaving Ray).

Writes benchmarks/results/ray-build.json and ray-build.md. Run it under `nice` on a shared
machine. Data: MedQuAD (Ben Abacha and Demner-Fushman, BMC Bioinformatics 20:511, 2019; CC BY
4.0), read from ../shared/benchmarks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SHARED = next((p / "shared" / "benchmarks" for p in (ROOT.parent, ROOT.parent.parent)
               if (p / "shared" / "benchmarks").is_dir()), ROOT.parent / "shared" / "benchmarks")
TARGET = 1.15  # a --ray build at 2 local workers at most 15% slower than a plain build

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(ROOT / "src"))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load() -> float:
    return round(os.getloadavg()[0], 1)


def write_corpus(dest: Path, limit: int | None) -> int:
    """One Markdown file per answer of medquad-full (a repeated id gets a numbered file)."""
    dest.mkdir(parents=True)
    seen: dict[str, int] = {}
    with open(SHARED / "medquad-full" / "corpus.jsonl", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()][:limit]
    for row in rows:
        seen[row["_id"]] = seen.get(row["_id"], 0) + 1
        stem = row["_id"] if seen[row["_id"]] == 1 else f"{row['_id']}~{seen[row['_id']]}"
        (dest / f"{stem}.md").write_text(f"# {row['title']}\n\n{row['text']}\n", "utf-8")
    return len(rows)


class Phases:
    """Times a build's phases from its progress callback (done, total): the first call, with
    nothing done, comes when embedding starts; the last when the last window is in."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.zero = self.last = None

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if self.zero is None:
            self.zero = now
        if done and done == total:
            self.last = now

    def result(self, summary, **extra) -> dict:
        result = {"seconds": round(summary.seconds, 1), "chunks": summary.chunks,
                  "embedded": summary.embedded, "startup_s": None, "embed_s": None,
                  "after_s": None, "rate": None}  # fmt: skip
        end = self.start + summary.seconds
        if summary.embedded and self.zero is not None and self.last is not None:
            embed_s = max(self.last - self.zero, 1e-9)
            result.update(startup_s=round(self.zero - self.start, 1), embed_s=round(embed_s, 1),
                          after_s=round(end - self.last, 1),
                          rate=round(summary.embedded / embed_s, 1))  # fmt: skip
        elif self.zero is not None:  # nothing to embed: every window written from reuse
            result.update(startup_s=round(self.zero - self.start, 1),
                          after_s=round(end - self.zero, 1))  # fmt: skip
        return {**result, "load": load(), **extra}


def plain_build(corpus: Path, index: Path, threads: int) -> dict:
    """A plain build on `threads` model threads: pinned ($QA_THREADS), as `qa build` otherwise
    takes the cores minus the load average of the moment it loads the model."""
    from qa.build import build_index

    log(f"plain build, {threads} model thread(s), load {load()}")
    before = os.environ.get("QA_THREADS")
    os.environ["QA_THREADS"] = str(threads)
    try:
        phases = Phases()
        summary = build_index(corpus, index, on_progress=phases)
    finally:
        if before is None:
            os.environ.pop("QA_THREADS", None)
        else:
            os.environ["QA_THREADS"] = before
    result = phases.result(summary, threads=threads)
    log(f"plain build: {result}")
    return result


def ray_build(corpus: Path, index: Path, workers: int, label: str) -> dict:
    from qa.distributed import build_index

    log(f"{label}, {workers} local workers, load {load()}")
    phases = Phases()
    summary = build_index(corpus, index, num_cpus=workers, on_progress=phases)
    result = phases.result(summary, workers=workers)
    if result["rate"]:
        result["rate_per_worker"] = round(result["rate"] / workers, 1)
    log(f"{label}: {result}")
    return result


def compare(plain: Path, ray: Path) -> dict:
    """Whether the two builds hold the same index: chunks, keys, and the least cosine between
    a passage's (and a sentence's) vectors in the two."""
    import numpy as np

    from qa.store import open_store

    a, b = open_store(plain).open(), open_store(ray).open()
    pa, pb = a.passages(np.arange(a.size)), b.passages(np.arange(b.size))
    same = a.size == b.size and pa.chunks == pb.chunks and a.manifest["keys"] == b.manifest["keys"]
    result = {"same_chunks": same}
    if same:
        result["min_cosine"] = float(np.min(np.sum(pa.vectors * pb.vectors, axis=1)))
        result["min_sentence_cosine"] = float(
            np.min(np.sum(pa.sentence_vectors * pb.sentence_vectors, axis=1)))
    log(f"same index: {result}")
    return result


def report(results: dict) -> str:
    plain, ray, again = results["plain"], results["ray"], results["ray_again"]
    same = results["same"]
    ratio = ray["seconds"] / plain["seconds"]
    results["ratio"] = round(ratio, 3)
    rows = [
        ("plain build", plain, f"{plain['threads']} model thread(s)"),
        (f"--ray build, {ray['workers']} local workers", ray, "1 thread per worker"),
        ("--ray build again, nothing changed", again, "every vector reused"),
    ]
    lines = [
        f"`python benchmarks/ray_build.py{results['args']}`: {results['date']}, commit "
        f"{results['commit']}, {results['answers']:,} answers -> {plain['chunks']:,} chunks, "
        f"{os.cpu_count()} cores, load average {results['load_start']} at the start.",
        "",
        "| build | total s | before embedding s | embedding s | after s | "
        "chunks/s embedding | load at the end | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r, note in rows:
        cells = [r["seconds"], r["startup_s"], r["embed_s"], r["after_s"], r["rate"], r["load"]]
        lines.append(f"| {name} | " + " | ".join("-" if c is None else str(c) for c in cells)
                     + f" | {note} |")
    per_worker = ray.get("rate_per_worker")
    store_rate = round(again["chunks"] / again["after_s"]) if again.get("after_s") else "-"
    results["store_rate"] = store_rate
    lines += [
        "",
        f"- --ray / plain: **{ratio:.2f}x** the time (target <= {TARGET}x: "
        f"{'holds' if ratio <= TARGET else 'does not hold'}).",
        f"- same index: {'yes' if same['same_chunks'] else 'NO'} (same chunks and keys; "
        f"least cosine between the two builds' vectors {same.get('min_cosine', 0):.6f}, "
        f"sentence vectors {same.get('min_sentence_cosine', 0):.6f}).",
        f"- per worker: {per_worker} chunks/s embedding (plain build: {plain['rate']} chunks/s "
        f"on {plain['threads']} thread(s)).",
        f"- the rebuild with nothing to embed took {again['seconds']} s for "
        f"{again['chunks']:,} chunks: {again['startup_s']} s before writing (Ray, workers, "
        f"reading, chunking on the workers, finding reusable vectors), then {again['after_s']} s "
        f"to write every window and commit ({store_rate} chunks/s: the driver and the store, "
        f"which more workers do not speed up).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="only the first N answers (a fixed subset)")
    parser.add_argument("--workers", type=int, default=2, help="local Ray CPUs (default: 2)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="model threads of the plain build (default: every core)")
    parser.add_argument("--keep", metavar="DIR", help="keep corpus and indexes in DIR")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="qa-raybench-"))
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "commit": os.popen(f"git -C {ROOT} rev-parse --short HEAD").read().strip(),
        "args": (f" --limit {args.limit}" if args.limit else "")
        + (f" --workers {args.workers}" if args.workers != 2 else "")
        + (f" --threads {args.threads}" if args.threads != (os.cpu_count() or 1) else ""),
        "load_start": load(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = RESULTS / ("ray-build" + (f"-{args.limit}" if args.limit else ""))
    try:
        results["answers"] = write_corpus(work / "corpus", args.limit)
        log(f"{results['answers']} answers written to {work / 'corpus'}")
        steps = [("plain", lambda: plain_build(work / "corpus", work / "plain", args.threads)),
                 ("ray", lambda: ray_build(work / "corpus", work / "ray", args.workers,
                                           "--ray build")),
                 ("ray_again", lambda: ray_build(work / "corpus", work / "ray", args.workers,
                                                 "--ray build again"))]  # fmt: skip
        for key, step in steps:
            results[key] = step()
            if key == "ray":
                results["same"] = compare(work / "plain", work / "ray")
            name.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
        text = report(results)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    name.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    name.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
