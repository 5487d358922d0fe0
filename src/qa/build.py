"""`qa build`: load -> chunk -> embed -> store, as one call.

Passages whose embed text is unchanged since the live build reuse its vectors (keyed by model
id and a hash of the text), so an unchanged corpus is never embedded twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from qa import __version__, config
from qa.embed.embedder import Embedder, vector_id
from qa.errors import QAError
from qa.ingest import sentences
from qa.ingest.chunking import CHUNKER_VERSION, DEFAULT_OVERLAP, chunk_documents, embed_text
from qa.ingest.loaders import Document, LoadResult, load_corpus
from qa.retrieve import lexical
from qa.store import local as store

log = logging.getLogger(__name__)


@dataclass
class BuildSummary:
    """What a build did."""

    documents: int
    chunks: int
    seconds: float
    embedded: int  # passages that had to be embedded (the rest came from the previous build)
    index_path: Path
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


SENTENCE_VECTORS = "pooled"  # how this version makes sentence vectors (see qa.ingest.sentences)


def text_key(model_id: str, text: str) -> str:
    """Cache key of an embedded text: the model and the exact text the model saw."""
    return hashlib.sha256(f"{model_id}\x00{text}".encode()).hexdigest()[:32]


@dataclass
class _Previous:
    """What a build can take from the live build: vectors by passage key, and its FAISS index."""

    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    sentences: dict[str, np.ndarray] = field(default_factory=dict)  # passage key -> its sentences
    keys: list[str] = field(default_factory=list)
    dense: tuple[Path, str] | None = None  # its FAISS index file and kind
    index_request: str | None = None  # the index type asked for ("auto" or a kind)


def _previous(index_dir: Path, model_id: str, dim: int) -> _Previous:
    """The live build's reusable parts, when it used the same model and vector space
    (`model_id` is the embedder's `vector_id`; else nothing)."""
    try:
        previous = store.load(index_dir)
    except QAError as exc:
        log.debug("no vectors to reuse: %s", exc)
        return _Previous()
    manifest = previous.manifest
    model = manifest["model"]
    if vector_id(model["id"], model.get("backend", "torch")) != model_id or model["dim"] != dim:
        return _Previous()
    keys = manifest.get("keys") or []
    if len(keys) != len(previous.chunks):
        return _Previous()
    pooled = manifest.get("sentence_vectors") == SENTENCE_VECTORS
    same_version = manifest.get("qa_version") == __version__
    return _Previous(
        {key: previous.vectors[i] for i, key in enumerate(keys)},
        sentences.previous_vectors(previous.arrays, keys, pooled),
        keys,
        (previous.path / store.DENSE, manifest["index_type"]) if same_version else None,
        manifest.get("index_request"),
    )


def _embed(
    embedder: Embedder,
    texts: list[str],
    spans: list[list[tuple[int, int]]],
    progress: bool,
    on_progress: Callable[[int, int], None] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embed passages and their sentences, in slices of a few batches when someone is watching
    the progress."""
    if on_progress is None:
        return embedder.encode_spans(texts, spans, progress=progress)
    step = embedder.batch_size * 8
    parts = []
    on_progress(0, len(texts))
    for i in range(0, len(texts), step):
        parts.append(embedder.encode_spans(texts[i : i + step], spans[i : i + step], progress))
        on_progress(min(i + step, len(texts)), len(texts))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _document_entry(document, chunks: int) -> dict:
    """A document as the manifest records it (size and mtime let staleness checks skip hashing)."""
    entry = {
        "path": document.path,
        "title": document.title,
        "kind": document.kind,
        "pages": len(document.pages) or None,
        "sha256": document.sha256,
        "chunks": chunks,
    }
    for key in ("size", "mtime_ns"):
        if key in document.metadata:
            entry[key] = document.metadata[key]
    return entry


@contextmanager
def _exclusive(index_dir: Path, wait: bool) -> Iterator[None]:
    """Hold the index folder's build lock, after removing what a killed build left behind."""
    file_lock = store.lock(index_dir, timeout=-1 if wait else 0)
    try:
        store.clean_up(index_dir)
        yield
    finally:
        file_lock.release()


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
        index_dir: index folder (default: $QA_INDEX or ./index).
        model: embedding model name or path (default: $QA_MODEL or the packaged model).
        progress: show a progress bar while embedding.
        embedder: an already loaded Embedder to use (its model wins over `model`).
        wait: wait for another build on the same index to finish instead of failing.
        on_progress: called with (passages embedded, passages to embed) as embedding goes on,
            e.g. to move a progress bar in the page.
        backend: "onnx", "onnx-int8" or "torch" (default: $QA_BACKEND or the measured default);
            recorded in the manifest so that searches embed questions the same way.
        index_type: FAISS index kind, "auto", "flat", "ivf" or "hnsw" (default: auto, by size).

    Raises:
        QAError: missing or empty corpus, another build running, model not loadable.

    Guarantees: the new index goes live in one atomic step only once it is complete; killed
    at any moment, the previous index stays live and intact, and the next build removes what
    the killed one left. Two builds of one index folder never run at once.
    """
    started = time.perf_counter()
    corpus_dir = config.corpus_dir(corpus_dir)
    index_dir = config.index_dir(index_dir)
    if not corpus_dir.is_dir():  # before taking the lock, which creates the index folder
        raise QAError(
            f"no corpus folder at {corpus_dir}",
            "create it and put .txt, .md, .html or .pdf files in it",
        )
    with _exclusive(index_dir, wait):
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
            index_dir, loaded, str(corpus_dir.resolve()), loaded_at_ns,
            embedder or Embedder(model, backend=backend), progress, on_progress, index_type,
        )  # fmt: skip
    summary.seconds = time.perf_counter() - started
    return summary


def build_documents(
    documents: list[Document],
    index_dir: str | os.PathLike,
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
        index_dir: the index folder.
        embedder: the model to embed with.
        corpus: where the documents came from (recorded in the manifest).
        progress, wait: as for `build_index`.

    Raises:
        QAError: no documents, or another build running.
    """
    started = time.perf_counter()
    index_dir = Path(index_dir)
    if not documents:
        raise QAError(f"no documents to index from {corpus}", "give a corpus with documents")
    with _exclusive(index_dir, wait):
        summary = _build_loaded(
            index_dir, LoadResult(list(documents), []), corpus, time.time_ns(), embedder, progress,
            None,
        )  # fmt: skip
    summary.seconds = time.perf_counter() - started
    return summary


def _build_loaded(
    index_dir: Path,
    loaded: LoadResult,
    corpus: str,
    loaded_at_ns: int,
    embedder: Embedder,
    progress: bool,
    on_progress: Callable[[int, int], None] | None,
    index_type: str | None = None,
) -> BuildSummary:
    """Chunk, embed (reusing the live build's vectors) and write a build; the caller holds the
    lock."""
    titles = {d.path: d.title for d in loaded.documents}
    chunks = chunk_documents(loaded.documents, embedder.count_tokens, embedder.max_tokens)
    texts = [embed_text(c.section, titles[c.doc], c.text) for c in chunks]
    keys = [text_key(embedder.vector_id, t) for t in texts]
    table = sentences.sentence_table(chunks)
    bounds = sentences.rows_per_chunk(table, len(chunks))
    previous = _previous(index_dir, embedder.vector_id, embedder.dim)
    cached, cached_sentences = previous.vectors, previous.sentences
    vectors = np.zeros((len(chunks), embedder.dim), dtype=np.float32)
    sentence_vectors = np.zeros((len(table), embedder.dim), dtype=np.float32)
    todo = []
    for i, key in enumerate(keys):
        rows = slice(bounds[i], bounds[i + 1])
        if key in cached and len(cached_sentences.get(key, ())) == rows.stop - rows.start:
            vectors[i], sentence_vectors[rows] = cached[key], cached_sentences[key]
        else:
            todo.append(i)
    log.debug("embedding %d passages (%d reused)", len(todo), len(chunks) - len(todo))
    if todo:
        spans = [sentences.model_spans(chunks[i], texts[i]) for i in todo]
        vectors[todo], pooled = _embed(
            embedder, [texts[i] for i in todo], spans, progress, on_progress
        )
        todo_rows = [np.arange(bounds[i], bounds[i + 1]) for i in todo]
        sentence_vectors[np.concatenate(todo_rows).astype(np.int64)] = pooled
    elif on_progress is not None:
        on_progress(0, 0)
    counts: dict[str, int] = {}
    for c in chunks:
        counts[c.doc] = counts.get(c.doc, 0) + 1
    manifest = {
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
        "lexical": {"version": lexical.VERSION, "k1": lexical.K1, "b": lexical.B},
        "keys": keys,
        "sentence_vectors": SENTENCE_VECTORS,
    }
    from qa.retrieve.searcher import lexical_texts

    bm25 = lexical.LexicalIndex.build(lexical_texts(chunks, titles))
    arrays = {sentences.TABLE: table, sentences.VECTORS: sentence_vectors, **bm25.to_arrays()}
    same_vectors = previous.keys == keys and previous.index_request == (index_type or "auto")
    dense = previous.dense if same_vectors else None  # the same vectors: reuse the FAISS index
    path = store.write_build(index_dir, manifest, chunks, vectors, arrays, dense_from=dense)
    return BuildSummary(
        documents=len(loaded.documents),
        chunks=len(chunks),
        seconds=0.0,
        embedded=len(todo),
        index_path=path,
        skipped=loaded.skipped,
    )
