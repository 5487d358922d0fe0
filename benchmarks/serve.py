"""`qa serve` under load: throughput and latency at 1, 4 and 16 clients, against the floor.

One run measures, on an index of the shipped report and the same questions:

- the floor: a warm `Searcher` called in-process, from 1, 4 and 16 threads;
- the floor on every core: one process per core, each with its own warm `Searcher`, answering
  at the same time (what the cores allow the in-process floor, measured rather than assumed:
  two searches on two cores share caches and memory, so this is below twice one thread);
- the server: a real `qa serve` process (uvicorn, `--workers N`, default one per core) on a free
  port, from 1, 4 and 16 client threads, each with its own keep-alive connection (`KeepAlive`,
  a minimal HTTP/1.1 client, so the clients take little of the cores they share with the
  server).

Every client sends `--requests` requests (default 200), and a last phase is the issue's load
check: 16 clients sending 200 requests each, all at once. Every server answer must equal the
in-process answer to the same question (`Answer.to_json()`), or the run fails (checked after
the timing, so that the check does not take the server's CPU). The target: throughput at 4
clients >= 0.8x of what the machine's cores allow for the floor, that is of the floor run on
every core at once (measured). The idealised reading, min(cores, 4) x the one-thread floor
(perfect scaling, which not even the in-process floor reaches), is printed beside it for
reference.

The machine is shared, and its load moves within seconds, so the floor and the server are
measured in alternation: `--rounds` rounds, each running every client count against the floor
and then the server with a share of the requests; each figure sums its rounds.

    python benchmarks/serve.py [--workers N] [--requests R] [--rounds N] [--k K] [--json FILE]

(`--floor-worker INDEX K` is one of the floor's processes, started by the run itself.)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from serve_load import KeepAlive, Tally, failures, run_clients  # noqa: E402

from qa.build import build_index  # noqa: E402
from qa.retrieve.searcher import Searcher  # noqa: E402

REPORT = ROOT / "corpus" / "chronic-middle-back-pain.txt"
DATA = ROOT / "benchmarks" / "data"
CLIENTS = (1, 4, 16)
LOAD_CLIENTS = 16
TARGET = 0.8


def questions() -> list[str]:
    """The reader questions about the report (answerable, near and off-topic), 174 in all."""
    with open(DATA / "reader_questions_all.jsonl", encoding="utf-8") as fh:
        asked = [json.loads(line)["question"] for line in fh if line.strip()]
    offtopic = (DATA / "offtopic_questions.txt").read_text(encoding="utf-8").splitlines()
    return list(dict.fromkeys(asked + [q.strip() for q in offtopic if q.strip()]))


def floor_worker(index: str, k: int) -> None:
    """One process of the floor on every core: warm a `Searcher`, then for each "N OFFSET" line
    on stdin answer N questions from OFFSET on and print a line when done."""
    searcher = Searcher(index)
    qs = questions()
    for q in qs:
        searcher.ask(q, k)
    print("ready", flush=True)
    for line in sys.stdin:
        n, offset = (int(x) for x in line.split())
        for j in range(offset, offset + n):
            searcher.ask(qs[j % len(qs)], k)
        print("done", flush=True)


class FloorProcesses:
    """`count` floor workers (`floor_worker`), started once and kept warm between rounds."""

    def __init__(self, index: Path, k: int, count: int) -> None:
        command = [sys.executable, __file__, "--floor-worker", str(index), str(k)]
        self.procs = [
            subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(count)
        ]
        for proc in self.procs:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a floor process did not start")
        self.answers, self.seconds = 0, 0.0

    def run(self, requests: int, offset: int) -> None:
        """Every process answers `requests` questions at once; adds answers and wall time."""
        start = time.perf_counter()
        for i, proc in enumerate(self.procs):
            proc.stdin.write(f"{requests} {offset + i * 37}\n")
            proc.stdin.flush()
        for proc in self.procs:
            if proc.stdout.readline().strip() != "done":
                raise RuntimeError("a floor process failed")
        self.seconds += time.perf_counter() - start
        self.answers += requests * len(self.procs)

    def close(self) -> None:
        for proc in self.procs:
            proc.stdin.close()
            proc.wait(timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(index: Path, workers: int, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("QA_API_TOKEN", "QA_API_CORS")}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "qa",
                "serve",
                "--index",
                str(index),
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"qa serve exited:\n{log.read_text()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"qa serve did not start:\n{log.read_text()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="qa serve --workers (default: one per core)",
    )
    parser.add_argument("--requests", type=int, default=200, help="requests per client")
    parser.add_argument("--rounds", type=int, default=5, help="alternations of floor and server")
    parser.add_argument("--k", type=int, default=5, help="passages per answer (default 5)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--floor-worker", nargs=2, metavar=("INDEX", "K"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_worker:
        floor_worker(args.floor_worker[0], int(args.floor_worker[1]))
        return 0
    cores = os.cpu_count() or 1
    qs = questions()
    load_start = os.getloadavg()[0]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()

    with tempfile.TemporaryDirectory(prefix="qa-serve-bench-") as tmp:
        corpus, index = Path(tmp) / "corpus", Path(tmp) / "index"
        corpus.mkdir()
        shutil.copy(REPORT, corpus / REPORT.name)
        build_index(corpus, index)
        searcher = Searcher(index)
        expected = {q: searcher.ask(q, args.k).to_json(q) for q in qs}  # also warms it up
        body = {q: json.dumps({"question": q, "k": args.k}).encode() for q in qs}

        def in_process(state: dict, q: str) -> None:
            searcher.ask(q, args.k)

        every_core = FloorProcesses(index, args.k, cores)
        proc, port = start_server(index, args.workers, Path(tmp) / "server.log")

        def over_http(state: dict, q: str) -> tuple[int, bytes]:
            if "conn" not in state:
                state["conn"] = KeepAlive(port)
            return state["conn"].post("/ask", body[q])

        floor_tallies = {n: Tally(n) for n in CLIENTS}
        served_tallies = {n: Tally(n) for n in CLIENTS}
        share = max(1, args.requests // args.rounds)
        try:
            for _ in range(2):  # every worker's first requests
                run_clients(Tally(args.workers * 2), 10, qs, over_http)
            for r in range(args.rounds):
                for n in CLIENTS:
                    run_clients(floor_tallies[n], share, qs, in_process, r * share)
                    if n == 4:
                        every_core.run(share * 4 // cores, r * share)
                    run_clients(served_tallies[n], share, qs, over_http, r * share, proc.pid)
            load = Tally(LOAD_CLIENTS)  # the load check in one piece: 16 x 200
            run_clients(load, args.requests, qs, over_http)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
            every_core.close()
        floor = [floor_tallies[n].summary() for n in CLIENTS]
        served = []
        for n in CLIENTS:
            problems = failures(served_tallies[n], expected)
            summary = served_tallies[n].summary()
            summary.update(failures=len(problems), first_failure=problems[0] if problems else None)
            served.append(summary)
        load_problems = failures(load, expected)
        load_check = dict(
            load.summary(),
            failures=len(load_problems),
            first_failure=load_problems[0] if load_problems else None,
        )

    one = floor[0]["throughput"]
    allowed = {n: one * min(cores, n) for n in CLIENTS}
    rows = []
    for f, s in zip(floor, served, strict=True):
        n = f["clients"]
        rows.append(
            {
                "clients": n,
                "floor": f,
                "server": s,
                "allowed": allowed[n],
                "ratio": s["throughput"] / allowed[n],
            }
        )
    at4 = next(r for r in rows if r["clients"] == 4)
    measured = every_core.answers / every_core.seconds
    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "cores": cores,
        "workers": args.workers,
        "k": args.k,
        "questions": len(qs),
        "load": [round(load_start, 1), round(os.getloadavg()[0], 1)],
        "rows": rows,
        "target_at_4": TARGET,
        "floor_every_core": {"processes": cores, "throughput": measured,
                             "answers": every_core.answers},
        "ratio_measured": at4["server"]["throughput"] / measured,
        "holds": at4["server"]["throughput"] / measured >= TARGET,  # the target's reading
        "holds_idealised": at4["ratio"] >= TARGET,
        "cpu_ratio": rows[0]["floor"]["cpu_ms"] / at4["server"]["cpu_ms"],
        "load_check": load_check,
        "failures": sum(r["server"]["failures"] for r in rows) + load_check["failures"],
    }
    print(
        f"`python benchmarks/serve.py`: {result['date']}, commit {commit}, {cores} cores, "
        f"qa serve --workers {args.workers}, k={args.k}, {share * args.rounds} requests per "
        f"client in {args.rounds} rounds, "
        f"{len(qs)} questions; load average {result['load'][0]} at start, "
        f"{result['load'][1]} at end\n"
    )
    print(
        "| clients | in-process req/s | p50 ms | p95 ms | CPU ms/answer | qa serve req/s | p50 ms "
        "| p95 ms | CPU ms/answer | idealised: min(cores, n) x floor | ratio to it | failures |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        f, s = r["floor"], r["server"]
        print(
            f"| {r['clients']} | {f['throughput']:.0f} | {f['p50_ms']:.1f} | {f['p95_ms']:.1f} "
            f"| {f['cpu_ms']:.2f} | {s['throughput']:.0f} | {s['p50_ms']:.1f} "
            f"| {s['p95_ms']:.1f} | {s['cpu_ms']:.2f} | {r['allowed']:.0f} | {r['ratio']:.2f}x "
            f"| {s['failures']} |"
        )
    print(
        f"\nat 4 clients: {at4['server']['throughput']:.0f} req/s = "
        f"{result['ratio_measured']:.2f}x of what the cores allow the floor, measured: the floor "
        f"run on every core at once ({cores} processes, {measured:.0f} req/s); target >= "
        f"{TARGET}x: {'holds' if result['holds'] else 'does not hold'}"
    )
    print(
        f"           = {at4['ratio']:.2f}x of the idealised figure, min(cores, 4) x the "
        f"one-thread floor ({at4['allowed']:.0f} req/s; the floor on every core gave "
        f"{measured / at4['allowed']:.2f}x of it): "
        f"{'at or over' if result['holds_idealised'] else 'under'} {TARGET}x"
    )
    print(
        f"CPU per answer at 4 clients: qa serve {at4['server']['cpu_ms']:.2f} ms (all its "
        f"processes) against {rows[0]['floor']['cpu_ms']:.2f} ms in-process on one thread: "
        f"{result['cpu_ratio']:.2f}x of the floor's efficiency (what the cores allow it when "
        f"the clients run elsewhere); the clients took {at4['server']['client_cpu_ms']:.2f} ms "
        "of CPU per request"
    )
    print(
        f"load check: {LOAD_CLIENTS} clients x {args.requests} requests at once, "
        f"{load_check['throughput']:.0f} req/s, p50 {load_check['p50_ms']:.1f} ms, "
        f"p95 {load_check['p95_ms']:.1f} ms: {load_check['failures']} failed or differed "
        f"from the in-process answers"
    )
    if result["failures"]:
        first = next(
            r["server"]["first_failure"]
            for r in [*rows, {"server": load_check}]
            if r["server"]["failures"]
        )
        print(f"FAILED: {result['failures']} requests failed or differed; first: {first}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
