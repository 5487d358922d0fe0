"""The `Searcher` that the CLI, the page and the API share: a store's live generation plus the
model, answering questions with `Answer`s (see `qa.retrieve.results`)."""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path

import numpy as np

from qa import config
from qa.embed.embedder import Embedder
from qa.embed.models import vector_id
from qa.embed.weights import english
from qa.errors import REBUILD_HINT, IndexCorruptError, QAError, UsageError
from qa.ingest.terms import content_terms
from qa.ingest.text import normalize
from qa.retrieve import answered, docfilter, rerank
from qa.retrieve.fusion import DEFAULT_MODE, MODES
from qa.retrieve.ranking import Ranking, distinct, rank
from qa.retrieve.results import Answer, Hit, hits
from qa.store import Generation, Store, open_store

MAX_K = 1000
DUPLICATES = 10  # passages ranked beyond k, to fill in for copies of a passage (`distinct`)
MAX_QUESTION_CHARS = config.MAX_QUESTION_CHARS  # questions are cut to this many characters


class Searcher:
    """Answers questions from a built index.

    Args:
        index: where the index lives: a folder (default: $QA_INDEX or ./index) or a `Store`.
        model: the embedding model the caller expects; None means $QA_MODEL, else the model the
            index was built with. A mismatch with the index is an error.
        embedder: an already loaded Embedder to share (e.g. with a build in the same process).
        reranker: a CrossEncoder (name, local folder, or a `Reranker`) to reorder the first
            passages with; None means $QA_RERANKER, else no reranking.

    Raises:
        QAError: no index, a damaged index, or an index built with another model.
    """

    def __init__(
        self,
        index: str | os.PathLike | Store | None = None,
        model: str | None = None,
        embedder: Embedder | None = None,
        reranker: str | rerank.Reranker | None = None,
    ) -> None:
        self.store = open_store(index)
        self._refresh_lock = threading.Lock()  # one refresh loads at a time
        self.generation: Generation = settled(self.store.open())
        manifest = self.generation.manifest
        wanted = model or os.environ.get("QA_MODEL")
        if embedder is None:
            embedder = Embedder(wanted or manifest["model"]["id"],
                                backend=manifest["model"].get("backend", "torch"),
                                weights=manifest["model"].get("weights"))
        check_model(manifest, embedder, self.store.location)
        self.embedder = embedder
        self._local = threading.local()  # per thread: whether its last question was cut
        if not isinstance(reranker, rerank.Reranker):
            name = rerank.configured(reranker)
            reranker = rerank.Reranker(name) if name else None
        self.reranker: rerank.Reranker | None = reranker

    @property
    def manifest(self) -> dict:
        """The manifest of the generation searches answer from."""
        return self.generation.manifest

    @property
    def truncated(self) -> bool:
        """Whether the last question searched by this thread was cut to the model window."""
        return getattr(self._local, "truncated", False)

    def refresh(self) -> bool:
        """Switch to a newer generation if one went live since loading; True when it switched.

        Safe to call from many threads while others search: the new generation is loaded aside
        and swapped in at once (one assignment), and each search answers wholly from the
        generation it started on. On error the searcher keeps the generation it has.

        Raises:
            QAError: the new generation cannot be loaded or needs another model.
        """
        live = self.store.current()
        if live is None or live == self.generation.id:
            return False
        with self._refresh_lock:
            if self.store.current() == self.generation.id:
                return True  # another thread switched meanwhile
            generation = self.store.open()  # searches go on with the old generation
            check_model(generation.manifest, self.embedder, self.store.location)
            self.generation = settled(generation)
        return True

    def documents(self, manifest: dict | None = None) -> list[dict]:
        """The indexed documents (of `manifest`, else the current generation), in corpus order."""
        return [
            {
                "path": d["path"],
                "title": d.get("title") or d["path"],
                "kind": d.get("kind", "text"),
                "pages": d.get("pages"),
                "chunks": d.get("chunks", 0),
            }
            for d in (manifest or self.manifest)["documents"]
        ]

    def original_path(self, doc: str) -> Path | None:
        """The original file of an indexed document, when it is still in the corpus folder."""
        return original_file(self.manifest, doc)

    def select(self, doc: docfilter.Patterns = None, manifest: dict | None = None):
        """The documents a `doc` filter allows (None: all). See `qa.retrieve.docfilter`.

        Raises:
            UsageError: a pattern matches no indexed document.
        """
        if not docfilter.as_patterns(doc):
            return None  # (no list of every document per question)
        paths = [d["path"] for d in (manifest or self.manifest)["documents"]]
        return docfilter.select_documents(doc, paths)

    def encode_question(self, question: str):
        """Embed a question (cut to the model window); shape (1, dim)."""
        text, self._local.truncated = self.embedder.truncate(question)
        return self.embedder.encode_questions([text])[0]

    def rank(self, question: str, n: int, mode: str | None = None,
             doc: docfilter.Patterns = None) -> Ranking:  # fmt: skip
        """The n best passages for a cleaned question (see `clean_question`), all from one
        generation even if `refresh` swaps it meanwhile; `ask` is the public way in."""
        mode = resolve_mode(mode)
        generation = require_passages(self.generation, self.store.location)
        docs = self.select(doc, generation.manifest)
        ranking = rank(generation, self.embedder, question, n, mode, docs, self.reranker)
        self._local.truncated = ranking.truncated
        return ranking

    def ask(self, question: str, k: int = 5, mode: str | None = None,
            doc: docfilter.Patterns = None) -> Answer:  # fmt: skip
        """Answer `question`: the k best passages, whether they answer it, highlights.

        Args:
            question: the question, in plain words (cut as `clean_question` says).
            k: how many passages to return (fewer when the index, or the filter, has fewer).
            mode: "dense", "lexical" or "hybrid"; None means the default (`DEFAULT_MODE`).
            doc: only passages of documents matching these glob patterns (see
                `qa.retrieve.docfilter`).

        Raises:
            UsageError: empty question, k out of range, unknown mode, `doc` matching nothing.
            QAError: an index without passages; IndexCorruptError: scores that are not numbers.
        """
        cleaned = clean_question(question)
        if not 1 <= k <= MAX_K:
            raise UsageError(f"k must be between 1 and {MAX_K}, not {k}", "ask for e.g. 5 passages")
        ranked = self.rank(cleaned, k + DUPLICATES, mode, doc)  # (spares for copies)
        ranking = distinct(require_numbers(ranked, self.store.location), k)
        generation = ranking.generation
        asked = answered.question_of(cleaned, generation, english(cleaned))
        centres = answered.centres(generation.manifest)
        null = None if centres is None else self.embedder.join_question(centres, ranking.weights)
        confidence, per_hit = answered.confidences(ranking.passages, ranking.query, asked, null)
        found = hits(ranking, content_terms(cleaned), self.embedder, per_hit)
        return Answer(cleaned, found, answered.is_answered(confidence), ranking.mode,
                      ranking.truncated or len(question) > MAX_QUESTION_CHARS, confidence,
                      list(asked.missing))

    def search(self, question: str, k: int = 5, mode: str | None = None,
               doc: docfilter.Patterns = None) -> list[Hit]:  # fmt: skip
        """The k passages that best answer `question`, best first: `ask(...).hits`."""
        return self.ask(question, k, mode, doc).hits


def settled(generation: Generation) -> Generation:
    """A freshly loaded generation, its objects moved out of the garbage collector's way.

    A loaded generation is tens of thousands of long-lived objects (a passage each) that the
    cyclic garbage collector would otherwise walk again and again: a full collection over
    medquad-full's took 54 ms, in the middle of whichever question set it off. So, once a
    generation is loaded, what is left of garbage is collected and everything alive is frozen
    (`gc.freeze`: still freed by reference counting, as a generation's passages are when a
    newer one replaces it, but no longer scanned). Questions then only leave short-lived
    objects, which the youngest collections take care of. The freeze is process-wide: what
    the caller holds at that moment is frozen too, and should it later become garbage caught
    in a reference cycle, it stays until `gc.unfreeze()`.
    """
    gc.collect()
    gc.freeze()
    return generation


def require_passages(generation: Generation, where: str) -> Generation:
    """The generation, unless it holds no passages (however it was made): that one is refused.

    Raises:
        QAError: it holds none.
    """
    if generation.size == 0:
        raise QAError(f"the index at {where} holds no passages",
                      "add documents with text to the corpus folder, then run `qa build`")
    return generation


def require_numbers(ranking: Ranking, where: str) -> Ranking:
    """The ranking, when its scores and question vector are numbers (k + dim values: checked
    for every question; a damaged index or model could give NaN).

    Raises:
        IndexCorruptError: they are not.
    """
    if not (np.isfinite(ranking.scores).all() and np.isfinite(ranking.query).all()):
        raise IndexCorruptError(
            f"the search of {where} gave scores that are not numbers (a damaged index or model)",
            REBUILD_HINT,
        )
    return ranking


def original_file(manifest: dict, doc: str) -> Path | None:
    """The file an indexed document was read from, when it is still in the corpus folder."""
    corpus = manifest.get("corpus")
    if not corpus:
        return None
    root = Path(corpus).resolve()
    path = (root / doc).resolve()
    if root not in path.parents or not path.is_file():
        return None
    return path


def resolve_mode(mode: str | None) -> str:
    """The retrieval mode to use: `mode`, or the default when None.

    Raises:
        UsageError: not one of `MODES`.
    """
    if mode is None:
        return DEFAULT_MODE
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}", f"use one of: {', '.join(MODES)}")
    return mode


def clean_question(question: str) -> str:
    """The question as searched: cut to its first `MAX_QUESTION_CHARS` characters (before
    anything reads it; then `rank` cuts it to the model's window, and `Answer.truncated` says
    whether either cut it), control characters dropped, white space collapsed.

    Raises:
        UsageError: nothing is left to search for.
    """
    if not isinstance(question, str):
        raise UsageError("the question must be text", "pass a string")
    question = question[:MAX_QUESTION_CHARS]
    cleaned = normalize("".join(ch if ch.isprintable() else " " for ch in question))
    if not cleaned:
        raise UsageError("the question is empty", 'type a question, e.g. qa ask "What causes it?"')
    return cleaned


def check_model(manifest: dict, embedder: Embedder, where: str) -> None:
    """Refuse an index built with another model, or vectors of another dimension."""
    if embedder.model_id != manifest["model"]["id"]:
        raise QAError(
            f"the index at {where} was built with model "
            f"{manifest['model']['id']!r}, not {embedder.model_id!r}",
            "run `qa build` with the model you want, or drop --model/QA_MODEL",
        )
    if embedder.dim != manifest["model"]["dim"]:
        raise QAError(
            f"the index at {where} holds {manifest['model']['dim']}-dimensional vectors; "
            f"model {embedder.model_id!r} gives {embedder.dim}",
            "run `qa build` to rebuild the index with this model",
        )
    backend = manifest["model"].get("backend", "torch")
    if vector_id(manifest["model"]["id"], backend) != embedder.vector_id:
        raise QAError(
            f"the index at {where} was embedded with the {backend} backend, "
            f"not {embedder.backend}",
            f"search it with backend {backend}, or rebuild it with --backend {embedder.backend}",
        )
