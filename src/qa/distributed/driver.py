"""The driver of a distributed build: the steps of `qa.build`, with the work on Ray workers.

    1. read      here: the corpus files, in order, a group of files at a time
    2. prepare   workers: parse, chunk, key each passage (`BuildWorker.prepare`); the passages
                 stay in Ray's object store, the driver keeps each group's keys and entries
    3. reuse     here: the live generation's vectors for those keys (`Store.reusable`)
    4. embed     workers: only the passages without reusable vectors, a window at a time
    5. write     here: windows in corpus order to the store's writer, then one atomic commit

The driver holds at most `HELD_PER_WORKER` x workers windows of `window` passages (each with
its vectors and sentence vectors), the group of files being cut into windows, and, for the
whole corpus, each passage's key and each document's manifest entry; the store's writer keeps
what it keeps (the local store: every vector, for the FAISS index it builds at the end).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa import __version__, config
from qa.build import (
    WINDOW_BATCHES,
    BuildSummary,
    Meter,
    Prepared,
    manifest,
    must_embed,
    require_documents,
    require_text,
    reusable,
    skipped_entries,
    windows,
    write,
)
from qa.distributed import cluster
from qa.distributed.dispatch import Dispatcher
from qa.distributed.worker import BuildWorker, Outline
from qa.embed.embedder import Embedder
from qa.errors import QAError
from qa.ingest.chunking import CHUNKER_VERSION
from qa.ingest.loaders import LoadResult, read_corpus, require_corpus
from qa.retrieve.answered import null_record
from qa.store import open_store

log = logging.getLogger(__name__)

GROUP_BYTES = 256 * 1024  # files sent to a worker in one call: up to this many bytes...
GROUP_FILES = 256  # ...or this many files
START_TIMEOUT_S = 900.0  # a new node may export the ONNX model first (minutes on a slow CPU)
RESTARTS = 3  # times Ray restarts a dead worker, and re-runs a call it was running


@dataclass
class Request:
    """What the parent asks of the build (JSON between the processes)."""

    corpus: str | None = None
    index: str | None = None
    model: str | None = None
    backend: str | None = None
    index_type: str | None = None
    max_bytes: int | None = None  # the largest file read (None: $QA_MAX_FILE_MB, 0: no limit)
    follow_symlinks: bool = False  # read links leading outside the corpus, walk linked folders
    address: str | None = None  # None: a local Ray
    wait: bool = False
    window: int | None = None  # passages per embedding call (default: as a local build)
    timeout_s: float = 600.0
    temp_dir: str | None = None
    num_cpus: int | None = None  # CPUs of a local Ray (default: all)


def run(request: Request, send: Callable[..., None]) -> BuildSummary:
    """Build the index as `qa.build.build_index` does, with the work on a Ray cluster.

    Args:
        request: what to build, and where Ray is.
        send: send(**message) reports to the parent: connected=True once Ray is up,
            processes=[(pid, start)] of a local Ray, progress=[done, total] of the embedding,
            done=summary as soon as the new index is live (before Ray is left).

    Raises:
        QAError: as `build_index`, and the cluster cannot be reached or fails.
    """
    started = time.perf_counter()
    corpus_dir = require_corpus(config.corpus_dir(request.corpus))
    store = open_store(request.index)
    embedder = Embedder(request.model, backend=request.backend)  # names the model; never loaded
    with store.lock(request.wait):
        with cluster.connect(request.address, request.temp_dir, request.num_cpus,
                             lambda found: send(processes=found),
                             lambda: send(connected=True)) as ray:  # fmt: skip
            try:
                summary = _build(ray, request, store, corpus_dir, embedder, send)
            except ray.exceptions.RayError as exc:
                raise _cluster_error(ray, exc) from None
            summary.seconds = time.perf_counter() - started
            send(done=dataclasses.asdict(summary))  # live now, whatever happens to Ray next
    return summary


def _build(ray, request: Request, store, corpus_dir: Path, embedder: Embedder,
           send: Callable[..., None]) -> BuildSummary:  # fmt: skip
    workers, facts = _start_workers(ray, embedder)
    if request.address is None:  # the workers too, for the parent to remove if this dies
        send(processes=cluster.processes(os.getpid()))
    try:
        dispatcher = Dispatcher(workers, request.timeout_s)
        loaded_at_ns = time.time_ns()
        documents, loaded, parts = _prepare(dispatcher, corpus_dir, request.max_bytes,
                                            request.follow_symlinks)  # fmt: skip
        require_documents(len(documents), loaded.skipped, corpus_dir)
        keys = [key for outline, _ in parts for key in outline.keys]
        reused = reusable(store, keys, embedder.vector_id, facts["dim"])
        todo = sum(must_embed(reused, key, n) for outline, _ in parts
                   for key, n in zip(outline.keys, outline.sentences, strict=True))  # fmt: skip
        chunks = len(keys)
        del keys
        require_text(range(chunks), len(documents), str(corpus_dir))
        log.debug("embedding %d passages (%d reused) on %d Ray workers", todo, chunks - todo,
                  len(workers))  # fmt: skip
        meter = Meter(todo, False, lambda done, total: send(progress=[done, total]))
        size = request.window or embedder.batch_size * WINDOW_BATCHES
        embedded = dispatcher.map(
            windows(_fetch(ray, parts), reused, size),
            lambda worker, w: worker.embed.remote(*w.job()) if w.todo else None,
        )
        generation = write(
            store, embedded, facts["dim"],
            lambda: {**manifest(documents, skipped_entries(loaded), chunks,
                                str(corpus_dir.resolve()), loaded_at_ns, facts,
                                request.index_type),
                     "ray": {"workers": len(workers)}},
            meter,
            null_record(_Remote(ray, workers[0], embedder)),
        )  # fmt: skip
    finally:
        for worker in workers:
            ray.kill(worker)
    return BuildSummary(len(documents), chunks, 0.0, todo, store.location, generation,
                        loaded.skipped)  # fmt: skip


class _Remote:
    """A worker's models where a build step wants an embedder's `member_questions` (the probe
    questions of `null_record`): the driver loads no model."""

    def __init__(self, ray, worker, embedder: Embedder) -> None:
        self.ray, self.worker = ray, worker
        self.vector_id, self.model_id = embedder.vector_id, embedder.model_id

    def member_questions(self, texts: list[str]) -> list[np.ndarray]:
        return self.ray.get(self.worker.member_questions.remote(texts))


def _start_workers(ray, embedder: Embedder) -> tuple[list, dict]:
    """One worker per free CPU of the cluster, each with the model loaded and checked against
    the driver's configuration (model, backend, qa and chunker versions)."""
    cpus = max(1, int(ray.available_resources().get("CPU", 1)))
    actor = ray.remote(num_cpus=1, max_restarts=RESTARTS, max_task_retries=RESTARTS)(BuildWorker)
    workers = [actor.remote(embedder.name, embedder.backend) for _ in range(cpus)]
    try:
        refs = [w.facts.remote() for w in workers]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=START_TIMEOUT_S)
        if len(ready) < len(refs):
            raise QAError(
                f"Ray workers did not load the model within {START_TIMEOUT_S:.0f} s",
                "check the cluster (`ray status`); the previous index is still live",
            )
        facts = ray.get(refs)
        expected = {"id": embedder.model_id, "backend": embedder.backend,
                    "qa_version": __version__, "chunker": CHUNKER_VERSION}  # fmt: skip
        for fact in facts:
            if "error" in fact:
                raise QAError(f"a Ray worker on {fact['node']}: {fact['error']}", fact["hint"])
            differ = [f"{k} {fact.get(k)!r} (here {v!r})" for k, v in expected.items()
                      if fact.get(k) != v]  # fmt: skip
            if differ or fact["dim"] != facts[0]["dim"]:
                raise QAError(
                    f"a Ray worker on {fact['node']} runs another configuration: "
                    + ", ".join(differ or ["another vector size"]),
                    "install the same qa version and model on every node of the cluster",
                )
    except BaseException:
        for worker in workers:
            ray.kill(worker)
        raise
    log.debug("%d Ray workers ready (%s)", len(workers), facts[0]["id"])
    return workers, facts[0]


def _prepare(dispatcher: Dispatcher, corpus_dir: Path, max_bytes: int | None,
             follow_symlinks: bool) -> tuple[list[dict], LoadResult, list]:  # fmt: skip
    """Read the corpus here and have the workers parse and chunk it, in order.

    Returns:
        (the documents' manifest entries, the skipped files (in a `LoadResult` without
        documents), [(outline, passages ref)] per group of files).
    """
    loaded = LoadResult([], [])
    documents: list[dict] = []
    parts = []
    for _group, (outline, ref) in dispatcher.map(
        _groups(read_corpus(corpus_dir, loaded, max_bytes, follow_symlinks)),
        lambda worker, group: worker.prepare.options(num_returns=2).remote(group),
    ):
        outline: Outline
        documents.extend(outline.documents)
        loaded.skipped.extend(outline.skipped)
        parts.append((outline, ref))
    loaded.skipped.sort()
    return documents, loaded, parts


def _groups(files: Iterator[tuple[str, bytes, dict]]) -> Iterator[list]:
    """Files in groups of about `GROUP_BYTES` (a larger file alone), in order."""
    group: list = []
    size = 0
    for item in files:
        if group and (size + len(item[1]) > GROUP_BYTES or len(group) >= GROUP_FILES):
            yield group
            group, size = [], 0
        group.append(item)
        size += len(item[1])
    if group:
        yield group


def _fetch(ray, parts: list) -> Iterator[Prepared]:
    """Each group's passages from the object store, in order, renumbered; a group's data is
    released once fetched (the list gives up its reference)."""
    queue = deque(parts)
    parts.clear()
    first = 0
    while queue:
        _outline, ref = queue.popleft()
        prepared = ray.get(ref).renumbered(first)
        del ref
        first += len(prepared)
        yield prepared


def _cluster_error(ray, exc: Exception) -> QAError:
    """A Ray failure as one line for the user."""
    if isinstance(exc, ray.exceptions.RayActorError):
        what = "a Ray worker died more often than Ray restarts it"
    elif isinstance(exc, ray.exceptions.RayTaskError):
        what = "a Ray worker failed"
    else:
        what = "the Ray cluster failed during the build"
    return QAError(f"{what}: {cluster.first_line(exc)}",
                   "the previous index is still live; check the cluster (`ray status`) and "
                   "build again")  # fmt: skip
