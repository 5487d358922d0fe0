#!/usr/bin/env python
"""Measure `qa` on this machine: every figure beside a floor measured in the same run.

    python benchmarks/run.py             # full run (the first one embeds medquad-full: long)
    python benchmarks/run.py --quick     # small samples, a few minutes; medquad-small stands in
    python benchmarks/run.py --large     # adds the 1,000,000-vector ANN benchmark

Writes benchmarks/results/latest.json and latest.md (plus a dated copy of each). The
medquad-full index is kept in benchmarks/results/index-medquad-full/ and rebuilt incrementally,
so only the first run pays for embedding it. Run it under `nice` on a shared machine.

One module per part, each saying what it measures and why: tune.py, warm.py ((a), serving
memory), build_bench.py ((b), (d), build memory), cold.py ((c)), backends.py, ann.py,
synthetic.py; common.py holds what they share. This file runs the parts, keeps the results and
writes the Markdown tables.

Data: MedQuAD (Ben Abacha and Demner-Fushman, BMC Bioinformatics 20:511, 2019; CC BY 4.0), read
from ../shared/benchmarks at run time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import ann
import backends
import build_bench
import cold
import synthetic
import tune
import warm
from common import RESULTS, environment, log, ratio

# part name -> part(work, backend, large, quick, args) -> its results; run in this order
PARTS = {"tune": tune.part, "warm": warm.part, "build": build_bench.part, "cold": cold.part,
         "backends": backends.part, "ann": ann.part, "synthetic": synthetic.part}


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
        build_bench.worker_main(*args.worker)
        return 0

    from qa import config

    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    backend = config.backend(args.backend)
    if backend not in config.BACKENDS:  # (qa.config no longer checks it; the Embedder does)
        parser.error(f"unknown backend {backend!r}; choose from {', '.join(config.BACKENDS)}")
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
            r[part] = PARTS[part](work, backend, large, quick, args)
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


def markdown(r: dict, command: str) -> str:
    """The tables of docs/performance.md: each figure, its floor (same part of the same run),
    ratio, target."""
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


if __name__ == "__main__":
    sys.exit(main())
