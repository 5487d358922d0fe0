"""`qa build`: load -> chunk -> embed -> store, as one call.

Passages whose embed text is unchanged since the live build reuse its vectors (keyed by model
id and a hash of the text), so an unchanged corpus is never embedded twice. Passages go to the
store's writer in windows, in corpus order, as they are embedded; the new generation goes live
only when the writer commits.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from qa import __version__, config
from qa.embed.embedder import Embedder
from qa.errors import QAError, UsageError
from qa.ingest import sentences
from qa.ingest.chunking import (
    CHUNKER_VERSION,
    DEFAULT_OVERLAP,
    Chunk,
    chunk_documents,
    embed_text,
)
from qa.ingest.loaders import Document, LoadResult, load_corpus
from qa.ingest.text import sentence_spans
from qa.retrieve.answered import NullLevel
from qa.store import Batch, Store, open_store
from qa.store.local_generation import POOLED

log = logging.getLogger(__name__)


@dataclass
class BuildSummary:
    """What a build did."""

    documents: int
    chunks: int
    seconds: float
    embedded: int  # passages that had to be embedded (the rest came from the previous build)
    index: str  # where the index lives (folder, or database URL without password)
    generation: str  # the id of the generation that went live
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        """The one-line summary the CLI prints."""
        text = (
            f"Indexed {self.documents} documents, {self.chunks} chunks in {self.seconds:.1f}s "
            f"({self.embedded} embedded, {self.chunks - self.embedded} reused)"
        )
        if self.skipped:
            text += f"; skipped {len(self.skipped)}: " + ", ".join(p for p, _ in self.skipped)
        return text


WINDOW_BATCHES = 32  # model batches per window handed to the store (a bounded slice in memory)


def text_key(model_id: str, text: str) -> str:
    """Cache key of an embedded text: the model and the exact text the model saw."""
    return hashlib.sha256(f"{model_id}\x00{text}".encode()).hexdigest()[:32]


def _document_entry(document, chunks: int) -> dict:
    """A document as the manifest records it (size and mtime let staleness checks skip hashing;
    text files also record the encoding they were read in)."""
    entry = {
        "path": document.path,
        "title": document.title,
        "kind": document.kind,
        "pages": len(document.pages) or None,
        "sha256": document.sha256,
        "chunks": chunks,
    }
    for key in ("size", "mtime_ns", "encoding"):
        if key in document.metadata:
            entry[key] = document.metadata[key]
    return entry


def build_index(
    corpus_dir: str | os.PathLike | None = None,
    index_dir: str | os.PathLike | None = None,
    model: str | None = None,
    progress: bool = False,
    embedder: Embedder | None = None,
    wait: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    backend: str | None = None,
    index_type: str | None = None,
) -> BuildSummary:
    """Build the index for a corpus folder and switch to it atomically.

    Args:
        corpus_dir: documents folder (default: $QA_CORPUS or ./corpus).
        index_dir: the index: a folder or a postgresql:// URL (default: $QA_INDEX or ./index),
            or a `Store`.
        model: embedding model name or path (default: $QA_MODEL or the packaged model).
        progress: show a progress bar while embedding.
        embedder: an already loaded Embedder to use (its model wins over `model`).
        wait: wait for another build on the same index to finish instead of failing.
        on_progress: called with (passages embedded, passages to embed) as embedding goes on,
            e.g. to move a progress bar in the page.
        backend: "onnx", "onnx-int8" or "torch" (default: $QA_BACKEND or the measured default);
            recorded in the manifest so that searches embed questions the same way.
        index_type: vector index kind, "auto", "flat", "ivf" or "hnsw" (default: auto, by
            size; PostgreSQL offers auto, flat and hnsw).

    Raises:
        QAError: missing or empty corpus, another build running, model not loadable.

    Guarantees: the new index goes live in one atomic step only once it is complete; killed
    at any moment, the previous index stays live and intact, and the next build removes what
    the killed one left. Two builds of one index folder never run at once.
    """
    started = time.perf_counter()
    corpus_dir = config.corpus_dir(corpus_dir)
    store = open_store(index_dir)
    kinds = getattr(store, "index_types", None)  # a store that offers fewer kinds says so
    if index_type and kinds and index_type not in kinds:
        raise UsageError(f"index type {index_type!r} is not available at {store.location}",
                         f"use one of: {', '.join(kinds)}")  # before anything is embedded
    if not corpus_dir.is_dir():  # before taking the lock, which creates the index folder
        raise QAError(
            f"no corpus folder at {corpus_dir}",
            "create it and put .txt, .md, .html or .pdf files in it",
        )
    with store.lock(wait):
        loaded_at_ns = time.time_ns()  # files changed after this are re-hashed by staleness checks
        loaded = load_corpus(corpus_dir)
        log.debug(
            "loaded %d documents from %s (%d skipped)",
            len(loaded.documents),
            corpus_dir,
            len(loaded.skipped),
        )
        if not loaded.documents:
            raise QAError(
                f"no documents to index in {corpus_dir}"
                + (f" ({len(loaded.skipped)} files skipped)" if loaded.skipped else ""),
                "add .txt, .md, .html or .pdf files to the corpus folder, then `qa build` again",
            )
        summary = _build_loaded(
            store, loaded, str(corpus_dir.resolve()), loaded_at_ns,
            embedder or Embedder(model, backend=backend), progress, on_progress, index_type,
        )  # fmt: skip
    summary.seconds = time.perf_counter() - started
    return summary


def build_documents(
    documents: list[Document],
    index_dir: str | os.PathLike | Store,
    embedder: Embedder,
    corpus: str,
    progress: bool = False,
    wait: bool = False,
) -> BuildSummary:
    """Chunk, embed and store already loaded documents as the live index of `index_dir`.

    `qa eval` indexes a benchmark's documents with it: the same chunking, embedding, vector
    reuse and atomic switch as `build_index`, for documents that are not files in a folder.

    Args:
        documents: the documents.
        index_dir: the index: a folder or a `Store`.
        embedder: the model to embed with.
        corpus: where the documents came from (recorded in the manifest).
        progress, wait: as for `build_index`.

    Raises:
        QAError: no documents, or another build running.
    """
    started = time.perf_counter()
    store = open_store(index_dir)
    if not documents:
        raise QAError(f"no documents to index from {corpus}", "give a corpus with documents")
    with store.lock(wait):
        summary = _build_loaded(
            store, LoadResult(list(documents), []), corpus, time.time_ns(), embedder, progress,
            None,
        )  # fmt: skip
    summary.seconds = time.perf_counter() - started
    return summary


def _build_loaded(
    store: Store,
    loaded: LoadResult,
    corpus: str,
    loaded_at_ns: int,
    embedder: Embedder,
    progress: bool,
    on_progress: Callable[[int, int], None] | None,
    index_type: str | None = None,
) -> BuildSummary:
    """Chunk, embed (reusing the live generation's vectors) and write a generation; the caller
    holds the lock."""
    titles = {d.path: d.title for d in loaded.documents}
    chunks = chunk_documents(loaded.documents, embedder.count_tokens, embedder.max_tokens)
    texts = [embed_text(c.section, titles[c.doc], c.text) for c in chunks]
    keys = [text_key(embedder.vector_id, t) for t in texts]
    spans = [sentence_spans(c.text) for c in chunks]
    reused = {key: (vector, rows) for key, vector, rows in
              store.reusable(keys, embedder.vector_id, embedder.dim)}  # fmt: skip
    todo = {i for i, key in enumerate(keys)
            if key not in reused or len(reused[key][1]) != len(spans[i])}  # fmt: skip
    log.debug("embedding %d passages (%d reused)", len(todo), len(chunks) - len(todo))
    meter = _Meter(len(todo), progress, on_progress)
    null = NullLevel(embedder)  # what unrelated questions score here ("answered" reads it)
    with store.writer() as writer:
        window = embedder.batch_size * WINDOW_BATCHES
        for start in range(0, len(chunks), window):
            part = range(start, min(start + window, len(chunks)))
            batch = _batch(embedder, [chunks[i] for i in part], titles, texts, keys, spans,
                           reused, todo, meter)  # fmt: skip
            null.update(batch.vectors, batch.sentence_vectors)
            writer.add(batch)
        meter.close()
        manifest = _manifest(loaded, chunks, corpus, loaded_at_ns, embedder, index_type)
        generation = writer.commit({**manifest, "answered": null.to_dict()})
    return BuildSummary(
        documents=len(loaded.documents),
        chunks=len(chunks),
        seconds=0.0,
        embedded=len(todo),
        index=store.location,
        generation=generation,
        skipped=loaded.skipped,
    )


def _batch(embedder: Embedder, part: list[Chunk], titles: dict[str, str], texts: list[str],
           keys: list[str], spans: list, reused: dict, embed: set[int],
           meter: _Meter) -> Batch:  # fmt: skip
    """One window of passages for the writer: reused vectors, those in `embed` embedded now."""
    ids = [c.id for c in part]
    todo = [i for i in ids if i in embed]
    dim = embedder.dim
    vectors = np.zeros((len(ids), dim), dtype=np.float32)
    bounds = np.cumsum([0, *(len(spans[i]) for i in ids)])
    sentence_vectors = np.zeros((int(bounds[-1]), dim), dtype=np.float32)
    for n, i in enumerate(ids):
        if i not in embed:
            vectors[n], sentence_vectors[bounds[n] : bounds[n + 1]] = reused[keys[i]]
    if todo:
        model_spans = [sentences.model_spans(part[i - ids[0]], texts[i]) for i in todo]
        fresh, pooled = embedder.encode_spans([texts[i] for i in todo], model_spans)
        rows = np.concatenate([np.arange(bounds[i - ids[0]], bounds[i - ids[0] + 1])
                               for i in todo]).astype(np.int64)  # fmt: skip
        vectors[[i - ids[0] for i in todo]], sentence_vectors[rows] = fresh, pooled
        meter.advance(len(todo))
    return Batch(part, [titles[c.doc] for c in part], [keys[i] for i in ids], vectors,
                 [spans[i] for i in ids], sentence_vectors)  # fmt: skip


class _Meter:
    """Progress of the embedding: a bar on the terminal and/or a callback (done, total)."""

    def __init__(self, total: int, progress: bool,
                 on_progress: Callable[[int, int], None] | None) -> None:  # fmt: skip
        self.total, self.done, self.on_progress = total, 0, on_progress
        self.bar = None
        if progress and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="Embedding", unit="passage")
        if on_progress is not None:
            on_progress(0, total)

    def advance(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        if self.on_progress is not None:
            self.on_progress(self.done, self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _manifest(loaded: LoadResult, chunks: list[Chunk], corpus: str, loaded_at_ns: int,
              embedder: Embedder, index_type: str | None) -> dict:  # fmt: skip
    """What a build records about itself (the store adds its own facts: keys, files...)."""
    counts: dict[str, int] = {}
    for c in chunks:
        counts[c.doc] = counts.get(c.doc, 0) + 1
    return {
        "qa_version": __version__,
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "loaded_at_ns": loaded_at_ns,
        "corpus": corpus,
        "model": {"id": embedder.model_id, "dim": embedder.dim, "backend": embedder.backend},
        "index_type": index_type or "auto",
        "index_request": index_type or "auto",
        "chunking": {
            "version": CHUNKER_VERSION,
            "max_tokens": embedder.max_tokens,
            "overlap": DEFAULT_OVERLAP,
        },
        "documents": [_document_entry(d, counts.get(d.path, 0)) for d in loaded.documents],
        "skipped": [
            {"path": p, "reason": r, **loaded.skipped_stats.get(p, {})}
            for p, r in loaded.skipped
        ],
        "chunks": len(chunks),
        "sentence_vectors": POOLED,
    }
