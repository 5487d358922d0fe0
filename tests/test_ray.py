"""Builds on Ray (`qa build --ray`): the same index as a plain build, and faults survived.

One local Ray (`ray.init(num_cpus=2, include_dashboard=False)`) serves the module; builds join
it by address from their own driver process, as they would join a cluster. Two tests start a
private local Ray through `qa build --ray` without an address, the second one to lose it
mid-build. Every test checks that no Ray process it started is left behind.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, report_questions
from test_formats import write_mixed_corpus
from test_incremental import write_corpus

from qa import config, distributed
from qa.build import build_index
from qa.cli import main
from qa.distributed import cluster
from qa.distributed.dispatch import HELD_PER_WORKER, Dispatcher
from qa.errors import QAError, install_hint
from qa.retrieve.searcher import Searcher
from qa.store import open_store

QUESTIONS = [q["question"] for q in report_questions()]
PIDS = ROOT / "tests" / "output" / "ray-processes"  # a killed test run's Ray, removed next time
# every process started from here on inherits this mark: Ray processes of other runs on the
# machine are never counted as ours
MARK = f"QA_TEST_RAY={os.getpid()}"
os.environ["QA_TEST_RAY"] = str(os.getpid())


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray for the module (2 CPUs); the address builds join it by."""
    _reap_stale()
    temp = tempfile.mkdtemp(prefix="qa-raytest-", dir="/tmp")  # short: Ray's socket paths
    started: list = []
    with cluster.connect(None, temp, num_cpus=2, on_processes=started.extend) as ray:
        PIDS.parent.mkdir(parents=True, exist_ok=True)
        PIDS.write_text("".join(f"{pid} {start}\n" for pid, start in started))
        yield ray.get_runtime_context().gcs_address
    shutil.rmtree(temp, ignore_errors=True)
    PIDS.unlink(missing_ok=True)
    assert started and not [p for p in started if cluster.alive(p)]


def _reap_stale() -> None:
    if PIDS.exists():
        processes = [tuple(map(int, line.split())) for line in PIDS.read_text().splitlines()]
        cluster.stop(processes, grace_s=0)
        PIDS.unlink()


@pytest.fixture(scope="module")
def mixed_corpus(tmp_path_factory) -> Path:
    """The mixed-format corpus of test_formats: .txt, .html, .md, .pdf, and two bad files."""
    return write_mixed_corpus(tmp_path_factory.mktemp("mixed"))


def ray_processes() -> set:
    """Ray processes started by this test run: (pid, start time)."""
    found = set()
    for pid in os.listdir("/proc"):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            ours = MARK.encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if ours and (command.startswith(b"ray::") or b"/ray/" in command
                     or b"gcs_server" in command or b"raylet" in command):  # fmt: skip
            start = cluster.start_time(int(pid))
            if start is not None:
                found.add((int(pid), start))
    return found


def command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def assert_none_left(before: set) -> None:
    """No Ray process started since `before` is still running (they get 15 s to exit)."""
    deadline = time.monotonic() + 15
    while (left := ray_processes() - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == set()


def assert_same_index(plain: Path, ray: Path) -> None:
    """Same chunks, keys and documents; every vector's cosine to the plain one >= 0.99999."""
    a, b = open_store(plain).open(), open_store(ray).open()
    assert a.size == b.size
    pa, pb = a.passages(np.arange(a.size)), b.passages(np.arange(b.size))
    assert pa.chunks == pb.chunks and pa.titles == pb.titles
    assert np.array_equal(pa.bounds, pb.bounds) and np.array_equal(pa.spans, pb.spans)
    assert np.min(np.sum(pa.vectors * pb.vectors, axis=1)) >= 0.99999
    assert np.min(np.sum(pa.sentence_vectors * pb.sentence_vectors, axis=1)) >= 0.99999
    for key in ("keys", "documents", "skipped", "chunks", "model", "chunking"):
        assert a.manifest[key] == b.manifest[key], key
    null_a, null_b = a.manifest["answered"], b.manifest["answered"]
    assert null_a.keys() == null_b.keys() and null_a["probes"] == null_b["probes"] > 0
    for a_centre, b_centre in zip(null_a["centre"], null_b["centre"], strict=True):  # per model
        assert np.allclose(a_centre, b_centre, atol=1e-5)
    assert b.manifest["ray"]["workers"] >= 1 and "ray" not in a.manifest


def answers(index: Path, embedder) -> list:
    """Each question's answer: whether answered, and its passages (doc, start, end, score)."""
    searcher = Searcher(index, embedder=embedder)
    out = []
    for question in QUESTIONS:
        answer = searcher.ask(question, k=5)
        out.append((answer.answered, [(h.doc, h.start, h.end, h.score) for h in answer.hits]))
    return out


def assert_same_answers(a: list, b: list) -> None:
    """The same passages in the same order; scores equal but for float rounding."""
    assert [(x[0], [h[:3] for h in x[1]]) for x in a] == [(y[0], [h[:3] for h in y[1]])
                                                          for y in b]  # fmt: skip
    scores = [[h[3] for x in answers for h in x[1]] for answers in (a, b)]
    assert np.allclose(scores[0], scores[1], rtol=0, atol=1e-5)


def test_an_unreachable_cluster_is_one_line(tmp_path, report_corpus, capsys):
    """First in the module, before its Ray starts: "auto" then finds no cluster (fast); with
    another Ray on the machine, an address where nothing listens (16 s)."""
    gcs = [p for p in os.listdir("/proc") if p.isdigit() and b"gcs_server" in command_line(int(p))]
    address = "127.0.0.1:1" if gcs else "auto"
    code = main(["build", "--corpus", str(report_corpus), "--index", str(tmp_path / "i"),
                 "--ray", address])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert err.startswith(f"qa: error: cannot reach the Ray cluster at {address}")
    assert err.count("\n") == 1 and "(hint: start a cluster with `ray start --head`" in err
    assert not (tmp_path / "i" / "current").exists()


LOCAL_RAY_BESIDE_A_CHILD = """
import subprocess, sys, tempfile
from qa.distributed import cluster
other = subprocess.Popen(["sleep", "600"])  # the caller's own child: a browser, a server
started = []
with cluster.connect(None, tempfile.mkdtemp(dir="/tmp"), num_cpus=1,
                     on_processes=started.extend) as ray:
    assert ray.get(ray.put(7)) == 7
assert other.pid not in [pid for pid, _ in started], started
assert other.poll() is None, "the local Ray's clean-up killed a process it did not start"
assert started and not [p for p in started if cluster.alive(p)]
other.kill()
print("ok")
"""


def test_a_local_ray_stops_its_own_processes_and_no_other(tmp_path):
    """A local Ray kills what it started and outlived `ray.shutdown()`, never a process that
    was a child of the caller before (it took every descendant of the caller for Ray's, and
    the test session's Chromium died at the end of this module)."""
    done = subprocess.run([sys.executable, "-c", LOCAL_RAY_BESIDE_A_CHILD], capture_output=True,
                          text=True, timeout=180, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr[-2000:]


def test_ray_build_of_the_report_equals_a_plain_build_and_reuses_vectors(
    ray_address, report_corpus, report_index, embedder, tmp_path, capsys, monkeypatch
):
    before = ray_processes()
    index = tmp_path / "index"
    argv = ["build", "-q", "--corpus", str(report_corpus), "--index", str(index)]
    assert main([*argv, "--ray", ray_address]) == 0
    out, err = capsys.readouterr()
    assert re.fullmatch(r"Indexed 1 document, 12 chunks in [0-9.]+s \(12 embedded, 0 reused\)\n",
                        out) and err == ""  # fmt: skip
    assert_same_index(report_index, index)
    assert_same_answers(answers(index, embedder), answers(report_index, embedder))

    monkeypatch.setenv("QA_RAY", ray_address)  # the same through the environment
    assert main(argv) == 0
    assert "(0 embedded, 12 reused)" in capsys.readouterr().out
    assert_none_left(before)


def test_ray_build_of_a_mixed_corpus_equals_a_plain_build(
    ray_address, mixed_corpus, embedder, tmp_path
):
    before = ray_processes()
    plain = build_index(mixed_corpus, tmp_path / "plain", embedder=embedder)
    ray = distributed.build_index(mixed_corpus, tmp_path / "ray", address=ray_address)
    assert (ray.documents, ray.chunks, ray.embedded, ray.skipped) == (
        plain.documents, plain.chunks, plain.chunks, plain.skipped)
    assert ray.line().endswith("skipped 2: broken.pdf, notes/scan.docx")
    assert_same_index(tmp_path / "plain", tmp_path / "ray")
    assert_same_answers(answers(tmp_path / "ray", embedder), answers(tmp_path / "plain", embedder))
    assert_none_left(before)


def worker_pids() -> list[int]:
    return sorted(pid for pid, _ in ray_processes()
                  if command_line(pid).startswith(b"ray::BuildWorker"))


def test_a_worker_killed_mid_build_is_restarted_and_the_build_completes(
    ray_address, mixed_corpus, embedder, tmp_path
):
    before = ray_processes()
    build_index(mixed_corpus, tmp_path / "plain", embedder=embedder)
    killed = []

    def kill_a_worker(done: int, total: int) -> None:
        if done and not killed:  # the first window is in: the rest is being embedded
            killed.append(worker_pids()[0])
            os.kill(killed[0], signal.SIGKILL)

    summary = distributed.build_index(mixed_corpus, tmp_path / "ray", address=ray_address,
                                      window=1, on_progress=kill_a_worker)  # fmt: skip
    assert killed and summary.embedded == summary.chunks
    assert_same_index(tmp_path / "plain", tmp_path / "ray")
    assert_none_left(before)


@pytest.mark.parametrize("sigint", [signal.SIG_DFL, signal.SIG_IGN], ids=["fg", "bg"])
def test_a_build_whose_qa_process_dies_stops_and_leaves_nothing(
    ray_address, report_index, tmp_path, sigint
):
    """`qa build --ray` killed with SIGKILL mid-build: its Ray driver (a child) stops too,
    nothing goes live, and the build's workers leave the cluster. Also when started in the
    background (SIGINT ignored, inherited by the child): the child once stopped itself with a
    SIGINT, which then did nothing, and the build went live after `qa build` was killed."""
    index = tmp_path / "index"
    shutil.copytree(report_index, index, symlinks=True)
    live = open_store(index).current()
    write_corpus(tmp_path / "notes", 300)  # 600 passages: still embedding when killed
    before, started = ray_processes(), time.time()
    qa = subprocess.Popen([sys.executable, "-m", "qa", "build", "-q", "--ray", ray_address,
                           "--corpus", str(tmp_path / "notes"), "--index", str(index)],
                          preexec_fn=lambda: signal.signal(signal.SIGINT, sigint))  # fmt: skip
    deadline = time.monotonic() + 300
    while not list(index.glob("builds/*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)  # the store's writer is open: passages are being embedded
    child = [p for p, _ in cluster.processes(qa.pid) if b"qa.distributed.child" in
             command_line(p)]  # fmt: skip
    assert list(index.glob("builds/*.tmp")) and len(child) == 1
    qa.kill()
    qa.wait()
    while cluster.start_time(child[0]) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cluster.start_time(child[0]) is None
    assert not list(index.glob("builds/*.tmp")) and open_store(index).current() == live
    assert_none_left(before)  # its workers are gone too
    assert not [d for d in Path("/tmp").glob("qa-ray-*") if d.stat().st_mtime > started]


def test_losing_the_cluster_mid_build_fails_in_one_line_and_keeps_the_index(
    report_corpus, embedder, tmp_path, capsys
):
    """A private local Ray (no address): one build that works, then one whose Ray dies."""
    before = ray_processes()
    index = tmp_path / "index"
    assert main(["build", "-q", "--ray", "--corpus", str(report_corpus), "--index",
                 str(index)]) == 0  # fmt: skip
    assert "(12 embedded, 0 reused)" in capsys.readouterr().out
    assert_none_left(before)
    previous = answers(index, embedder)
    live = open_store(index).current()
    lost = []

    def lose_the_cluster(done: int, total: int) -> None:
        """Every process of the build's Ray dies (GCS, raylet, workers): the machine is gone."""
        if not lost:
            child = next(p for p, _ in cluster.processes(os.getpid())
                         if b"qa.distributed.child" in command_line(p))
            for pid, _ in cluster.processes(child):
                with contextlib.suppress(OSError):
                    name = Path(f"/proc/{pid}/comm").read_text().strip()
                    os.kill(pid, signal.SIGKILL)
                    lost.append(name)

    write_corpus(tmp_path / "notes", 100)  # 200 passages: plenty of work left at the kill
    with pytest.raises(QAError) as info:
        distributed.build_index(tmp_path / "notes", index, window=1,
                                on_progress=lose_the_cluster)  # fmt: skip
    assert {"gcs_server", "raylet"} <= set(lost), lost
    assert "\n" not in str(info.value) and "previous index is still live" in info.value.hint
    assert open_store(index).current() == live
    assert answers(index, embedder) == previous
    assert_none_left(before)
    with open_store(index).lock():  # as the next build takes it: what the lost one left goes
        assert not list(index.glob("builds/*.tmp"))


class Echo:
    """A tiny Ray actor for the dispatcher (shipped by value: workers cannot import tests)."""

    def double(self, x: int) -> int:
        time.sleep(0.002 * (x % 5))  # finish out of order
        return 2 * x


def test_the_dispatcher_keeps_order_and_holds_a_bounded_number_of_items(ray_address):
    import ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    workers = [ray.remote(num_cpus=0)(Echo).remote() for _ in range(2)]
    pulled, out, most = [0], [], 0

    def items():
        for i in range(200):
            pulled[0] += 1
            yield i

    def call(worker, i):  # every third item needs no work, as a window of reused vectors
        return None if i % 3 == 0 else worker.double.remote(i)

    for item, value in Dispatcher(workers, timeout_s=60).map(items(), call):
        most = max(most, pulled[0] - len(out))
        out.append((item, value))
    assert out == [(i, None if i % 3 == 0 else 2 * i) for i in range(200)]
    assert most <= HELD_PER_WORKER * len(workers) + 1  # + the item just read
    for worker in workers:
        ray.kill(worker)


@pytest.mark.parametrize(("value", "address"), [
    (None, None), ("", None), ("0", None), ("off", None), ("local", "local"), ("1", "local"),
    ("auto", "auto"), ("ray://head:10001", "ray://head:10001"), (" head:6379 ", "head:6379"),
])  # fmt: skip
def test_ray_address_from_the_environment(monkeypatch, value, address):
    if value is None:
        monkeypatch.delenv("QA_RAY", raising=False)
    else:
        monkeypatch.setenv("QA_RAY", value)
    assert config.ray_address() == address
    assert config.ray_address("local") == "local"  # --ray wins over QA_RAY


def test_without_ray_installed_the_build_says_how_to_get_it(monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    assert main(["build", "--ray", "--index", str(tmp_path / "i")]) == 1
    assert capsys.readouterr().err == (
        f"qa: error: Ray is not installed (hint: {install_hint('ray')} (on every node))\n")
