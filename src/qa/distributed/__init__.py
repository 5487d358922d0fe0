"""Builds spread over a Ray cluster: `qa build --ray [ADDRESS]`, `qa.distributed.build_index`.

The same build as `qa.build.build_index` (same chunks, keys, reuse of unchanged vectors, store
writer, lock, atomic switch and summary), with the parsing, chunking and embedding done by Ray
workers, one per CPU of the cluster, each loading the model once:

    __init__.py   build_index: runs the build in a child process and reports for it
    child.py      that process: JSON request in, JSON lines out (progress, the answer)
    driver.py     the build's steps on the driver (read, reuse, write) and on the workers
    worker.py     BuildWorker, the Ray actor: parse + chunk files, embed passages
    dispatch.py   a bounded number of calls per worker, results back in corpus order
    cluster.py    a private local Ray or a cluster joined; quiet settings; no leftovers

Why a child process: when a cluster is lost, Ray can end the driver process itself without
raising anything (a dead GCS makes it exit after a few seconds). The Ray driver therefore runs in
a child, and this process turns whatever happens there into a summary or one `QAError`; the
previous index stays live either way, since nothing is switched before the commit. Ray is an
optional dependency (`pip install 'qa[ray]'`); nothing here imports it at `qa` start-up.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from qa import config
from qa.build import BuildSummary, Meter, max_file_bytes
from qa.distributed import cluster
from qa.errors import QAError, UsageError, install_hint

log = logging.getLogger(__name__)

LOCAL = "local"  # the address that means: start Ray on this machine for the build
LOG = "build.log"  # the child's output, in its temporary folder
STOP_WAIT_S = 30.0  # how long an interrupted build may take to stop its workers
_RAY_LOG_PREFIX = re.compile(r"^\[[^\]]*\]\s*(\S+:\d+:\s*)?")


def build_index(
    corpus_dir: str | os.PathLike | None = None,
    index_dir: str | os.PathLike | None = None,
    model: str | None = None,
    address: str = LOCAL,
    progress: bool = False,
    wait: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    backend: str | None = None,
    index_type: str | None = None,
    max_file_mb: float | None = None,
    follow_symlinks: bool | None = None,
    window: int | None = None,
    timeout_s: float = 600.0,
    num_cpus: int | None = None,
) -> BuildSummary:
    """Build the index of a corpus folder with Ray, and switch to it atomically.

    Args:
        corpus_dir, model, progress, wait, on_progress, backend, index_type, max_file_mb,
            follow_symlinks: as for `qa.build.build_index`.
        index_dir: the index location (a folder, or a store's location string).
        address: "local" starts Ray on this machine for the build (and stops it after);
            "auto", "host:6379" or "ray://host:10001" join a running cluster.
        window: passages per embedding call (default: as a local build's windows, 256).
        timeout_s: how long to wait for any worker's call before failing the build.
        num_cpus: CPUs of a local Ray (default: all of this machine's).

    Raises:
        QAError: as `qa.build.build_index`; Ray not installed; the cluster cannot be reached,
            or is lost during the build (the previous index stays live).
    """
    started = time.perf_counter()
    if importlib.util.find_spec("ray") is None:
        raise QAError("Ray is not installed", install_hint("ray") + " (on every node)")
    if index_dir is not None and not isinstance(index_dir, (str, os.PathLike)):
        raise UsageError("a Ray build takes the index as a location, not a Store object",
                         "give the index folder or location")  # fmt: skip
    temp_dir = tempfile.mkdtemp(prefix="qa-ray-", dir="/tmp" if os.path.isdir("/tmp") else None)
    request = {
        "corpus": None if corpus_dir is None else str(corpus_dir),
        "index": None if index_dir is None else str(index_dir),
        "model": model, "backend": backend, "index_type": index_type,
        "max_bytes": max_file_bytes(max_file_mb),
        "follow_symlinks": config.follow_symlinks(follow_symlinks),
        "address": None if address == LOCAL else address,
        "wait": wait, "window": window, "timeout_s": timeout_s, "num_cpus": num_cpus,
        "temp_dir": temp_dir, "log_level": logging.getLogger("qa").getEffectiveLevel(),
    }  # fmt: skip
    try:
        answer = _run_child(request, Path(temp_dir), progress, on_progress)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    summary = BuildSummary(**{**answer, "skipped": [tuple(s) for s in answer["skipped"]]})
    summary.seconds = time.perf_counter() - started
    return summary


def _run_child(request: dict, temp_dir: Path, progress: bool,
               on_progress: Callable[[int, int], None] | None) -> dict:  # fmt: skip
    """Run the build in `python -m qa.distributed.child`; its summary, or the error raised."""
    read, write = os.pipe()
    with open(temp_dir / LOG, "wb") as output:
        child = subprocess.Popen(
            [sys.executable, "-m", "qa.distributed.child", str(write)],
            stdin=subprocess.PIPE, stdout=output, stderr=output, pass_fds=(write,), env=_env(),
        )  # fmt: skip
    os.close(write)
    meter, answer, started, connected = None, {}, [], False
    try:
        try:  # standard input stays open: the child stops when it closes (this process died)
            child.stdin.write(json.dumps(request).encode() + b"\n")
            child.stdin.flush()
        except BrokenPipeError:  # it ended at once: its log says why
            pass
        with os.fdopen(read, encoding="utf-8") as lines:
            for line in lines:
                message = json.loads(line)
                if "processes" in message:
                    started += [tuple(p) for p in message["processes"] if tuple(p) not in started]
                elif "connected" in message:
                    connected = True
                elif "progress" in message:
                    done, total = message["progress"]
                    meter = meter or Meter(total, progress, on_progress)
                    meter.advance(done - meter.done)
                else:  # the first answer counts: "done" once the index is live stays so
                    answer = answer or message
        child.wait()
    except BaseException:  # Ctrl-C reaches the child too: let it stop its workers first
        try:
            child.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            pass
        raise
    finally:
        if meter is not None:
            meter.close()
        if child.poll() is None:
            child.kill()
            child.wait()
        with contextlib.suppress(OSError):
            child.stdin.close()
        cluster.stop(started, grace_s=2.0)  # what a dead driver's local Ray left running
        tail = _log_tail(temp_dir / LOG)
    return _answer(answer, child.returncode, tail, connected, request["address"])


def _answer(answer: dict, returncode: int, tail: str, connected: bool,
            address: str | None) -> dict:  # fmt: skip
    """The child's summary, or its error raised here."""
    if "done" in answer:
        return answer["done"]
    if "error" in answer:
        error = answer["error"]
        raise QAError(error["message"], error["hint"], error["exit_code"])
    if "interrupted" in answer:
        raise KeyboardInterrupt
    if "crash" in answer:
        raise RuntimeError(f"{answer['crash']['type']}: {answer['crash']['message']}")
    how = f"signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
    if not connected:
        raise QAError(
            f"cannot reach {'a local Ray' if address is None else 'the Ray cluster at ' + address}"
            f" ({tail or how})",
            cluster.CONNECT_HINT,
        )
    raise QAError(
        f"the Ray build stopped: the cluster was lost or the build process died ({how}"
        + (f"; {tail}" if tail else "") + ")",
        "the previous index is still live; check the cluster (`ray status`) and build again",
    )


def _log_tail(path: Path) -> str:
    """The child's last line of output, for the error message (all of it goes to the debug
    log)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    if text.strip():
        log.debug("output of the Ray build process:\n%s", text.rstrip())
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    last = _RAY_LOG_PREFIX.sub("", " ".join(lines[-1].split()))  # "[time E pid] file.h:1: "
    return last.split(". ")[0][:200]


def _env() -> dict:
    """The child's environment: this one, with this `qa` importable first."""
    import qa

    src = str(Path(qa.__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": src + (os.pathsep + path if path else "")}
