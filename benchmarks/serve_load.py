"""The client side of `benchmarks/serve.py`: many clients at once against an answering side,
with their latencies, wall time, replies and the CPU time of whoever answered.

`run_clients` drives either side through one callable: the in-process floor (a `Searcher`) or a
`qa serve` process through `KeepAlive`, a minimal HTTP/1.1 client that costs the shared cores
little, so the server is measured rather than its clients. `failures` checks the replies
afterwards (not during the timing).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Tally:
    """Latencies, elapsed time and replies of one (kind, client count), summed over rounds."""

    def __init__(self, clients: int) -> None:
        self.clients = clients
        self.latencies: list[float] = []
        self.seconds = 0.0
        self.replies: list[tuple[str, object]] = []  # (question, reply) to check afterwards
        self.cpu = 0.0  # CPU seconds of the answering side (this process, or the server's)
        self.client_cpu = 0.0  # CPU seconds of this process while it was the server's client

    def summary(self) -> dict:
        n = len(self.latencies)
        return {
            "clients": self.clients,
            "requests": n,
            "seconds": round(self.seconds, 3),
            "throughput": n / self.seconds,
            "p50_ms": percentile(self.latencies, 50) * 1000,
            "p95_ms": percentile(self.latencies, 95) * 1000,
            "cpu_ms": self.cpu / n * 1000,
            "client_cpu_ms": self.client_cpu / n * 1000,
        }


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children that are still running."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:  # itself, or a worker
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def run_clients(
    tally: Tally, requests: int, qs: list[str], call, offset: int = 0, server: int | None = None
) -> None:
    """`tally.clients` threads, each asking `requests` questions through `call(state,
    question)` (which returns the reply); adds the latencies, time, replies and CPU time (of
    this process, or of the `server` process and its workers) to `tally`."""

    def cpu() -> float:
        return time.process_time() if server is None else cpu_seconds(server)

    n = tally.clients
    latencies: list[list[float]] = [[] for _ in range(n)]
    replies: list[list[tuple[str, object]]] = [[] for _ in range(n)]
    barrier = threading.Barrier(n + 1)

    def client(i: int) -> None:
        state: dict = {}
        barrier.wait()
        for j in range(offset, offset + requests):
            q = qs[(i * 37 + j) % len(qs)]  # every client in its own order
            t = time.perf_counter()
            try:
                reply = call(state, q)
            except Exception as exc:  # noqa: BLE001 - counted as a failure
                reply = exc
            latencies[i].append(time.perf_counter() - t)
            replies[i].append((q, reply))
        if "conn" in state:
            state["conn"].close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    cpu_start, own_start = cpu(), time.process_time()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    tally.seconds += time.perf_counter() - start
    tally.cpu += cpu() - cpu_start
    if server is not None:
        tally.client_cpu += time.process_time() - own_start
    tally.latencies += [x for per in latencies for x in per]
    tally.replies += [r for per in replies for r in per]


def failures(tally: Tally, expected: dict) -> list[str]:
    """The server replies that are not 200 with exactly the in-process answer."""
    out = []
    for q, reply in tally.replies:
        if isinstance(reply, Exception):
            out.append(f"{q!r}: {reply.__class__.__name__}: {reply}")
        elif reply[0] != 200:
            out.append(f"{q!r}: HTTP {reply[0]}: {reply[1][:200]!r}")
        elif json.loads(reply[1]) != expected[q]:
            out.append(f"{q!r}: the answer differs from the in-process one")
    return out


class KeepAlive:
    """A minimal HTTP/1.1 client on one keep-alive connection: a prepared request out, the
    status and the body (by Content-Length) back. It costs the shared cores a fraction of
    `http.client`'s CPU per request (no header objects, no email parser), so the server is
    measured rather than its clients."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.head = b"Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
        self.buffer = b""

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.sock is None:  # first request, or the server closed the last connection
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=120)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buffer = b""
        self.sock.sendall(b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s"
                          % (path.encode(), self.head, len(body), body))  # fmt: skip
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        fields = dict(line.split(b":", 1) for line in head.lower().split(b"\r\n")[1:])
        length = int(fields[b"content-length"])
        while len(rest) < length:
            rest += self._recv()
        self.buffer = rest[length:]
        if fields.get(b"connection", b"").strip() == b"close":
            self.close()
        return int(head.split(None, 2)[1]), rest[:length]

    def _recv(self) -> bytes:
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("the server closed the connection")
        return data

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
