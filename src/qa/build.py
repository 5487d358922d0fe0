"""`qa build`: load -> chunk -> embed -> store, as one call.

Passages whose embed text is unchanged since the live build reuse its vectors (keyed by model
id and a hash of the text), so an unchanged corpus is never embedded twice. Passages go to the
store's writer in windows, in corpus order, as they are embedded; the new generation goes live
only when the writer commits.

The steps (prepare chunks, find reusable vectors, cut windows, write and commit, the manifest)
are shared with the distributed build (`qa.distributed`), which runs the chunking and the model
on Ray workers and feeds the same windows to the same writer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from qa import __version__, config
from qa.embed.embedder import Embedder
from qa.errors import NOTE, QAError, UsageError
from qa.ingest import sentences
from qa.ingest.chunking import (
    CHUNKER_VERSION,
    DEFAULT_OVERLAP,
    Chunk,
    chunk_documents,
    embed_text,
)
from qa.ingest.loaders import Document, LoadResult, load_corpus, require_corpus
from qa.ingest.text import sentence_spans
from qa.present.wording import duration, plural
from qa.retrieve.answered import null_record
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

    def line(self, unit: str = "chunk") -> str:
        """The one-line summary the CLI prints (the page calls a chunk a "passage")."""
        text = (
            f"Indexed {plural(self.documents, 'document')}, {plural(self.chunks, unit)} in "
            f"{self.seconds:.1f}s ({self.embedded} embedded, {self.chunks - self.embedded} reused)"
        )
        if self.skipped:
            text += f"; skipped {len(self.skipped)}: " + ", ".join(p for p, _ in self.skipped)
        return text


WINDOW_BATCHES = 32  # model batches per window handed to the store (a bounded slice in memory)
FIRST_WINDOW_BATCHES = 2  # the first window is small: its time gives the estimate early
LONG_BUILD_S = 60  # a build expected to embed for longer says so first, with the estimate
LARGE_TEXT = 5_000_000  # characters: chunking this much takes tens of seconds; said first


def text_key(model_id: str, text: str) -> str:
    """Cache key of an embedded text: the model and the exact text the model saw."""
    return hashlib.sha256(f"{model_id}\x00{text}".encode()).hexdigest()[:32]


def document_entry(document: Document, chunks: int) -> dict:
    """A document as the manifest records it (size and mtime let staleness checks skip hashing;
    text files also record the encoding they were read in, scans the pages recognised)."""
    entry = {
        "path": document.path,
        "title": document.title,
        "kind": document.kind,
        "pages": len(document.pages) or None,
        "sha256": document.sha256,
        "chunks": chunks,
    }
    for key in ("size", "mtime_ns", "encoding", "ocr_pages"):
        if key in document.metadata:
            entry[key] = document.metadata[key]
    return entry


def document_entries(documents: list[Document], chunks: list[Chunk]) -> list[dict]:
    """The manifest entry of each document, with its number of chunks."""
    counts: dict[str, int] = {}
    for c in chunks:
        counts[c.doc] = counts.get(c.doc, 0) + 1
    return [document_entry(d, counts.get(d.path, 0)) for d in documents]


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
    max_file_mb: float | None = None,
    without: Collection[str] = (),
    locked: bool = False,
    follow_symlinks: bool | None = None,
    on_reading: Callable[[str, int, int], None] | None = None,
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
        max_file_mb: skip files larger than this many megabytes, 0 for no limit (default:
            $QA_MAX_FILE_MB, else `config.DEFAULT_MAX_FILE_MB`).
        without: documents (paths relative to the corpus) to leave out of this build, e.g. one
            the page deletes once the index without it is live.
        locked: the caller holds the index's build lock already (`index_dir` is then that
            `Store`), so that it can decide what to build and change the corpus under it.
        follow_symlinks: read symbolic links that lead outside the corpus folder and walk
            linked folders (default: $QA_FOLLOW_SYMLINKS, else no: they are skipped, named).
        on_reading: called with (file, pages recognised, pages to recognise) as the pages of
            a scan are recognised (OCR), e.g. to move a progress bar in the page.

    Raises:
        QAError: missing corpus, no text in it, another build running, model not loadable;
            UsageError: a bad size limit.

    Guarantees: the new index goes live in one atomic step only once it is complete; killed
    at any moment, the previous index stays live and intact, and the next build removes what
    the killed one left; a build that fails leaves nothing new in the index folder. Two builds
    of one index folder never run at once. A build expected to take longer than
    `LONG_BUILD_S` logs its estimate (a `NOTE`) once its first passages are embedded.
    """
    started = time.perf_counter()
    corpus_dir = require_corpus(config.corpus_dir(corpus_dir))
    max_bytes = max_file_bytes(max_file_mb)
    store = open_store(index_dir)
    kinds = getattr(store, "index_types", None)  # a store that offers fewer kinds says so
    if index_type and kinds and index_type not in kinds:
        raise UsageError(f"index type {index_type!r} is not available at {store.location}",
                         f"use one of: {', '.join(kinds)}")  # before anything is embedded
    with nullcontext() if locked else store.lock(wait):
        loaded_at_ns = time.time_ns()  # files changed after this are re-hashed by staleness checks
        with PageMeter(progress, on_reading) as pages:
            loaded = leave_out(load_corpus(corpus_dir, max_bytes, follow_symlinks, pages.advance),
                               without)
        log.debug(
            "loaded %d documents from %s (%d skipped)",
            len(loaded.documents),
            corpus_dir,
            len(loaded.skipped),
        )
        require_documents(len(loaded.documents), loaded.skipped, corpus_dir)
        summary = _build_loaded(
            store, loaded, str(corpus_dir.resolve()), loaded_at_ns,
            embedder or Embedder(model, backend=backend), progress, on_progress, index_type,
        )  # fmt: skip
    summary.seconds = time.perf_counter() - started
    return summary


def leave_out(loaded: LoadResult, paths: Collection[str]) -> LoadResult:
    """`loaded` without the documents (and skipped files) at these paths."""
    if not paths:
        return loaded
    stats = {p: s for p, s in loaded.skipped_stats.items() if p not in paths}
    return LoadResult([d for d in loaded.documents if d.path not in paths],
                      [s for s in loaded.skipped if s[0] not in paths], stats)  # fmt: skip


def max_file_bytes(max_file_mb: float | None) -> int | None:
    """The per-file size limit in bytes (None: no limit).

    Raises:
        UsageError: not a number of megabytes.
    """
    try:
        return config.max_file_bytes(max_file_mb)
    except ValueError as exc:
        raise UsageError(str(exc), "give a number of megabytes, e.g. 50, or 0 for no limit") \
            from None


def require_documents(documents: int, skipped: list, corpus_dir: Path) -> None:
    """Fail a build that found no document to index.

    Raises:
        QAError: `documents` is 0.
    """
    if not documents:
        raise QAError(
            f"no documents to index in {corpus_dir}" + _skipped_words(skipped),
            "add documents (.txt, .md, .html, .pdf, .docx, .pptx, .odt, .epub or images) to "
            "the corpus folder, then `qa build` again",
        )


def require_text(chunks: list, documents: int, corpus: str) -> None:
    """Fail a build whose documents hold no text, before anything is written.

    Raises:
        QAError: there is no chunk.
    """
    if not chunks:
        raise QAError(
            f"no text to index in {corpus}: {plural(documents, 'document')} found, all empty",
            "add documents with text to the corpus folder, then `qa build` again",
        )


def _skipped_words(skipped: list[tuple[str, str]], shown: int = 3) -> str:
    """' (2 files skipped: a.png: unsupported file type .png; ...)', or '' for none."""
    if not skipped:
        return ""
    named = "; ".join(f"{path}: {reason}" for path, reason in skipped[:shown])
    more = f" and {len(skipped) - shown} more" if len(skipped) > shown else ""
    return f" ({plural(len(skipped), 'file')} skipped: {named}{more})"


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
    size = sum(len(d.text) for d in loaded.documents)
    if size >= LARGE_TEXT:
        log.log(NOTE, "splitting %.1f million characters into passages; the time embedding "
                "them will take follows", size / 1e6)  # fmt: skip
    chunks = chunk_documents(loaded.documents, embedder.count_tokens, embedder.max_tokens)
    require_text(chunks, len(loaded.documents), corpus)  # the live index stays as it is
    prepared = Prepared.of(chunks, titles, embedder.vector_id)
    reused = reusable(store, prepared.keys, embedder.vector_id, embedder.dim)
    todo = to_embed(prepared, reused)
    log.debug("embedding %d passages (%d reused)", todo, len(chunks) - todo)
    documents = document_entries(loaded.documents, chunks)
    window = embedder.batch_size * WINDOW_BATCHES
    meter = Meter(todo, progress, on_progress)
    first = embedder.batch_size * FIRST_WINDOW_BATCHES  # an early estimate of the time
    generation = write(
        store,
        ((w, w.embed(embedder)) for w in windows([prepared], reused, window, first)),
        embedder.dim,
        lambda: manifest(documents, skipped_entries(loaded), len(chunks), corpus, loaded_at_ns,
                         model_facts(embedder), index_type),
        meter,
        null_record(embedder),
    )  # fmt: skip
    return BuildSummary(
        documents=len(loaded.documents),
        chunks=len(chunks),
        seconds=0.0,
        embedded=todo,
        index=store.location,
        generation=generation,
        skipped=loaded.skipped,
    )


# The steps below are shared by every way of building: here on one machine, and spread over a
# Ray cluster (`qa.distributed`, which chunks and embeds on the workers).

Vectors = tuple[np.ndarray, np.ndarray]  # (passage vectors, sentence vectors), as the writer takes


@dataclass(frozen=True)
class Prepared:
    """Chunks ready to embed: what the model sees of each, its vector key, its sentences.

    Attributes:
        chunks: the chunks, in corpus order.
        titles: each chunk's document title.
        texts: what the model embeds for each (`chunking.embed_text`).
        keys: each one's vector key (`text_key`): equal keys share vectors across builds.
        spans: each one's sentences, (start, end) offsets into its text.
    """

    chunks: list[Chunk]
    titles: list[str]
    texts: list[str]
    keys: list[str]
    spans: list[list[tuple[int, int]]]

    @classmethod
    def of(cls, chunks: list[Chunk], titles: dict[str, str], vector_space: str) -> Prepared:
        """Prepare chunks (`titles`: document path -> title) for a model's vector space."""
        names = [titles[c.doc] for c in chunks]
        texts = [embed_text(c.section, t, c.text) for c, t in zip(chunks, names, strict=True)]
        return cls(chunks, names, texts, [text_key(vector_space, t) for t in texts],
                   [sentence_spans(c.text) for c in chunks])  # fmt: skip

    def __len__(self) -> int:
        return len(self.chunks)

    def renumbered(self, first_id: int) -> Prepared:
        """The same passages with chunk ids running on from `first_id`."""
        chunks = [dataclasses.replace(c, id=first_id + n) for n, c in enumerate(self.chunks)]
        return dataclasses.replace(self, chunks=chunks)

    def part(self, start: int, stop: int) -> Prepared:
        """Passages start..stop-1."""
        return Prepared(self.chunks[start:stop], self.titles[start:stop], self.texts[start:stop],
                        self.keys[start:stop], self.spans[start:stop])  # fmt: skip


def reusable(store: Store, keys: list[str], vector_space: str, dim: int) -> dict[str, Vectors]:
    """The live generation's vectors for these keys: key -> (vector, sentence vectors)."""
    return {key: (vector, rows) for key, vector, rows in store.reusable(keys, vector_space, dim)}


def must_embed(reused: dict[str, Vectors], key: str, sentences: int) -> bool:
    """Whether a passage needs the model: no reusable vectors, or not one per sentence."""
    return key not in reused or len(reused[key][1]) != sentences


def to_embed(prepared: Prepared, reused: dict[str, Vectors]) -> int:
    """How many of the prepared passages need the model."""
    pairs = zip(prepared.keys, prepared.spans, strict=True)
    return sum(must_embed(reused, key, len(spans)) for key, spans in pairs)


@dataclass(frozen=True)
class Window:
    """Passages handed to the store's writer at once (a bounded slice in memory).

    Attributes:
        passages: the passages (chunk ids already final).
        reused: the reusable vectors (shared by all windows of a build).
        todo: positions in `passages` that the model must embed; the rest are reused.
    """

    passages: Prepared
    reused: dict[str, Vectors]
    todo: list[int]

    def job(self) -> tuple[list[str], list[list[tuple[int, int]]]]:
        """What the model must do: the texts to embed and their sentences' offsets in them."""
        p = self.passages
        return ([p.texts[i] for i in self.todo],
                [sentences.model_spans(p.chunks[i], p.texts[i]) for i in self.todo])  # fmt: skip

    def embed(self, embedder: Embedder) -> Vectors | None:
        """Run the job on this process's model (None when there is nothing to embed)."""
        if not self.todo:
            return None
        vectors, pooled = embedder.encode_spans(*self.job())
        if not (np.isfinite(vectors).all() and np.isfinite(pooled).all()):
            raise QAError(f"the model {embedder.name!r} gave vectors that are not numbers",
                          "check the model files, or build with another --model or --backend")
        return vectors, pooled

    def batch(self, fresh: Vectors | None, dim: int) -> Batch:
        """The writer's batch: reused vectors, and `fresh` (the job's result) for `todo`."""
        p = self.passages
        vectors = np.zeros((len(p), dim), dtype=np.float32)
        bounds = np.cumsum([0, *(len(s) for s in p.spans)])
        sentence_vectors = np.zeros((int(bounds[-1]), dim), dtype=np.float32)
        todo = set(self.todo)
        for n, key in enumerate(p.keys):
            if n not in todo:
                vectors[n], sentence_vectors[bounds[n] : bounds[n + 1]] = self.reused[key]
        if self.todo:
            rows = np.concatenate([np.arange(bounds[i], bounds[i + 1]) for i in self.todo])
            vectors[self.todo], sentence_vectors[rows.astype(np.int64)] = fresh
        return Batch(p.chunks, p.titles, p.keys, vectors, p.spans, sentence_vectors)


def windows(parts: Iterable[Prepared], reused: dict[str, Vectors], size: int,
            first: int | None = None) -> Iterator[Window]:  # fmt: skip
    """Cut prepared passages (parts in corpus order, ids final) into windows of at most `size`
    (the very first of at most `first`, when given)."""
    for prepared in parts:
        start = 0
        while start < len(prepared):
            stop = start + (first if first is not None else size)
            first = None
            p = prepared.part(start, stop)
            start = stop
            todo = [i for i, (k, s) in enumerate(zip(p.keys, p.spans, strict=True))
                    if must_embed(reused, k, len(s))]  # fmt: skip
            yield Window(p, reused, todo)


def write(store: Store, embedded: Iterable[tuple[Window, Vectors | None]], dim: int,
          make_manifest: Callable[[], dict], meter: Meter, answered: dict) -> str:  # fmt: skip
    """Write embedded windows, in corpus order, as a new generation and make it live.

    Args:
        store: where the index lives (the caller holds its lock).
        embedded: each window with the result of its job (None when it had none).
        dim: the vector size.
        make_manifest: the build's manifest, made once every window is written.
        meter: advanced by each window's embedded passages.
        answered: where unrelated questions point (`null_record`), for the manifest.

    Returns:
        The id of the generation that went live. On any error nothing is left behind.
    """
    with store.writer() as writer:
        began = time.perf_counter()
        for window, fresh in embedded:  # (the embedding happens as the next window is taken)
            seconds = time.perf_counter() - began
            batch = window.batch(fresh, dim)
            writer.add(batch)
            meter.advance(len(window.todo), seconds if window.todo else 0.0)
            began = time.perf_counter()
        meter.close()
        return writer.commit({**make_manifest(), "answered": answered})


class Meter:
    """Progress of the embedding: a bar on the terminal and/or a callback (done, total), and
    once the first passages are embedded, the time the rest should take (logged when long).

    The bar follows the terminal's width as it changes and puts the share done and the time
    left first, so a narrow terminal cuts the bar, not them, and no line ever wraps.
    """

    BAR = "Embedding {percentage:3.0f}%, {remaining} left |{bar}| {n_fmt}/{total_fmt} passages"

    def __init__(self, total: int, progress: bool,
                 on_progress: Callable[[int, int], None] | None) -> None:  # fmt: skip
        self.total, self.done, self.on_progress = total, 0, on_progress
        self.seconds, self.estimate = 0.0, None
        self.bar = None
        if progress and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, bar_format=self.BAR, dynamic_ncols=True)
        if on_progress is not None:
            on_progress(0, total)

    def advance(self, n: int, seconds: float = 0.0) -> None:
        if not n:
            return
        self.done += n
        self.seconds += seconds
        if self.estimate is None and self.seconds > 0:
            self.estimate = (self.total - self.done) * self.seconds / self.done
            if self.estimate >= LONG_BUILD_S:
                self.note("embedding %s; about %s left at the %.1f passages/s measured "
                          "(Ctrl-C stops it, and the current index stays)",
                          plural(self.total, "passage"), duration(self.estimate),
                          self.done / self.seconds)  # fmt: skip
        if self.bar is not None:
            self.bar.update(n)
        if self.on_progress is not None:
            self.on_progress(self.done, self.total)

    def note(self, message: str, *args) -> None:
        note_above(self.bar, message, *args)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def note_above(bar, message: str, *args) -> None:
    """Log a note on a line of its own (a progress bar, when shown, is taken down and drawn
    again below it)."""
    if bar is None:
        log.log(NOTE, message, *args)
        return
    with bar.external_write_mode():
        log.log(NOTE, message, *args)


class PageMeter:
    """Progress of the pages recognised (OCR) while files are read: a bar per scanned file on
    the terminal and/or a callback (file, done, total); once a file's first page is done, the
    time the rest should take (logged when long)."""

    BAR = ("Recognising {desc} {percentage:3.0f}%, {remaining} left |{bar}| "
           "{n_fmt}/{total_fmt} pages")  # fmt: skip

    def __init__(self, progress: bool,
                 on_reading: Callable[[str, int, int], None] | None) -> None:  # fmt: skip
        self.progress, self.on_reading = progress, on_reading
        self.bar = None
        self.started = 0.0

    def advance(self, rel: str, done: int, total: int) -> None:
        """`done` of the `total` pages of `rel` are recognised."""
        if done == 0:
            self.close()
            self.started = time.perf_counter()
            if self.progress:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=rel, bar_format=self.BAR, dynamic_ncols=True)
        elif done == 1 and total > 1:
            seconds = time.perf_counter() - self.started
            left = seconds * (total - 1)
            if left >= LONG_BUILD_S:
                note_above(self.bar, "recognising the text of %s in %s (OCR); about %s left "
                           "at %.1f pages/s (Ctrl-C stops it, and the current index stays)",
                           plural(total, "scanned page"), rel, duration(left),
                           1 / max(seconds, 1e-9))  # fmt: skip
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
        if self.on_reading is not None:
            self.on_reading(rel, done, total)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> PageMeter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def model_facts(embedder: Embedder) -> dict:
    """What a build records of the model (and checks a distributed build's workers against)."""
    return {
        "id": embedder.model_id,
        "dim": embedder.dim,
        "backend": embedder.backend,
        "max_tokens": embedder.max_tokens,
        "models": [{"id": m.model_id, "dim": m.dim, "query_prefix": m.spec.query_prefix,
                    "passage_prefix": m.spec.passage_prefix, "multilingual": m.spec.multilingual}
                   for m in embedder.members],
        "weights": list(embedder.weights),
    }


def skipped_entries(loaded: LoadResult) -> list[dict]:
    """The skipped files as the manifest records them (with size and mtime when known)."""
    return [
        {"path": p, "reason": r, **loaded.skipped_stats.get(p, {})} for p, r in loaded.skipped
    ]


def manifest(documents: list[dict], skipped: list[dict], chunks: int, corpus: str,
             loaded_at_ns: int, model: dict, index_type: str | None) -> dict:  # fmt: skip
    """What a build records about itself (the store adds its own facts: keys, files...).

    Args:
        documents: `document_entry` of each document; skipped: `skipped_entries`.
        chunks: how many passages; model: `model_facts`.
    """
    return {
        "qa_version": __version__,
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "loaded_at_ns": loaded_at_ns,
        "corpus": corpus,
        "model": {"id": model["id"], "dim": model["dim"], "backend": model["backend"],
                  "models": model["models"], "weights": model["weights"]},
        "index_type": index_type or "auto",
        "index_request": index_type or "auto",
        "chunking": {
            "version": CHUNKER_VERSION,
            "max_tokens": model["max_tokens"],
            "overlap": DEFAULT_OVERLAP,
        },
        "documents": documents,
        "skipped": skipped,
        "chunks": chunks,
        "sentence_vectors": POOLED,
    }
