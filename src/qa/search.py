"""Search: the `Searcher` that the CLI and the page share, returning typed `Hit`s."""

from __future__ import annotations

import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from qa import config, docfilter, store
from qa.chunking import embed_text
from qa.citation import cite
from qa.embedding import Embedder
from qa.errors import QAError, UsageError
from qa.text import normalize

MAX_K = 1000


@dataclass(frozen=True)
class Hit:
    """One ranked passage.

    Attributes:
        rank: 1 for the best passage.
        score: cosine similarity of question and passage (higher is better).
        doc: document path relative to the corpus folder.
        title: the document's title.
        section: the heading the passage stands under, or None.
        start, end: character offsets of the passage in the loaded document text.
        text: the passage, exactly as in the loaded text (plain, without markup).
        page: the 1-based page of a PDF the passage is on, else None.
        source_start, source_end: where the passage is in the file's decoded text (.txt and
            .md files), else None.
    """

    rank: int
    score: float
    doc: str
    title: str
    section: str | None
    start: int
    end: int
    text: str
    page: int | None = None
    source_start: int | None = None
    source_end: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def citation(self) -> str:
        """Where the passage comes from, for a reader: "title, section, p. N"."""
        return cite(self.title, self.section, self.page)


def clean_question(question: str) -> str:
    """The question as searched: control characters dropped, white space collapsed.

    Raises:
        UsageError: nothing is left to search for.
    """
    if not isinstance(question, str):
        raise UsageError("the question must be text", "pass a string")
    cleaned = normalize("".join(ch if ch.isprintable() else " " for ch in question))
    if not cleaned:
        raise UsageError("the question is empty", 'type a question, e.g. qa ask "What causes it?"')
    return cleaned


class Searcher:
    """Answers questions from a built index.

    Args:
        index_dir: the index folder (default: $QA_INDEX or ./index).
        model: the embedding model the caller expects; None means $QA_MODEL, else the model the
            index was built with. A mismatch with the index is an error.
        embedder: an already loaded Embedder to share (e.g. with a build in the same process).

    Raises:
        QAError: no index, a damaged index, or an index built with another model.
    """

    def __init__(
        self,
        index_dir: str | os.PathLike | None = None,
        model: str | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.index_dir = config.index_dir(index_dir)
        self._lock = threading.Lock()  # guards the swap of the index snapshot
        self._refresh_lock = threading.Lock()  # one refresh loads at a time
        self._load(store.load(self.index_dir))
        wanted = model or os.environ.get("QA_MODEL")
        if embedder is None:
            embedder = Embedder(wanted or self.manifest["model"]["id"])
        _check_model(self.manifest, embedder, self.index_dir)
        self.embedder = embedder
        self._local = threading.local()  # per thread: whether its last question was cut

    @property
    def truncated(self) -> bool:
        """Whether the last question searched by this thread was cut to the model window."""
        return getattr(self._local, "truncated", False)

    def _load(self, stored: store.StoredIndex) -> None:
        """Make `stored` the snapshot searches use (callers hold `_lock`, or construct)."""
        documents = stored.manifest["documents"]
        stored.titles = {d["path"]: d.get("title") or d["path"] for d in documents}
        self.manifest = stored.manifest
        self.chunks = stored.chunks
        self.titles = stored.titles
        self._masks: dict[tuple[str, ...], np.ndarray | None] = {}
        self.stored = stored

    @property
    def build_path(self) -> Path:
        """The build folder this searcher answers from."""
        return self.stored.path

    def refresh(self) -> bool:
        """Switch to a newer build if one went live since loading; True when it switched.

        Safe to call from many threads while others search: the new build is loaded aside and
        swapped in at once, and each search answers wholly from the build it started on. On
        error (a damaged build, another model) the searcher keeps the build it has.

        Raises:
            QAError: the new build cannot be loaded or needs another model.
        """
        live = store.current_build(self.index_dir)
        if live is None or live == self.stored.path:
            return False
        with self._refresh_lock:
            if store.current_build(self.index_dir) == self.stored.path:
                return True  # another thread switched meanwhile
            stored = store.load(self.index_dir)  # searches go on with the old snapshot
            _check_model(stored.manifest, self.embedder, self.index_dir)
            with self._lock:
                self._load(stored)
        return True

    def documents(self) -> list[dict]:
        """The indexed documents, in corpus order: path, title, kind, pages (PDF) and chunks."""
        return [
            {
                "path": d["path"],
                "title": self.titles[d["path"]],
                "kind": d.get("kind", "text"),
                "pages": d.get("pages"),
                "chunks": d.get("chunks", 0),
            }
            for d in self.manifest["documents"]
        ]

    def original_path(self, doc: str) -> Path | None:
        """The original file of an indexed document, when it is still in the corpus folder."""
        corpus = self.manifest.get("corpus")
        if not corpus:
            return None
        root = Path(corpus).resolve()
        path = (root / doc).resolve()
        if root not in path.parents or not path.is_file():
            return None
        return path

    def doc_mask(self, doc: docfilter.Patterns = None) -> np.ndarray | None:
        """The chunks a `doc` filter allows, as a boolean mask over chunk ids (None: all).

        Every ranking honours it before ranking. See `qa.docfilter` for what a pattern matches.

        Raises:
            UsageError: a pattern matches no indexed document.
        """
        patterns = docfilter.as_patterns(doc)
        stored = self.stored
        key = (str(stored.path), *patterns)
        if key not in self._masks:
            paths = [d["path"] for d in stored.manifest["documents"]]
            chosen = docfilter.select_documents(patterns, paths)
            chunk_docs = [c.doc for c in stored.chunks]
            self._masks[key] = None if chosen is None else docfilter.chunk_mask(chosen, chunk_docs)
        return self._masks[key]

    def passage_text(self, chunk_id: int) -> str:
        """The text the model saw for a chunk: its section heading (or title) and the passage."""
        c = self.chunks[chunk_id]
        return embed_text(c.section, self.titles.get(c.doc, ""), c.text)

    def encode_question(self, question: str) -> np.ndarray:
        """Embed a question (cut to the model window); shape (1, dim)."""
        text, self._local.truncated = self.embedder.truncate(question)
        return self.embedder.encode([text])

    def search(self, question: str, k: int = 5, doc: docfilter.Patterns = None) -> list[Hit]:
        """The k passages that best answer `question`, best first.

        Args:
            question: the question, in plain words.
            k: how many passages to return (fewer when the index, or the filter, has fewer).
            doc: only passages of documents matching these glob patterns (see `qa.docfilter`).

        Raises:
            UsageError: empty question, k out of range, or a `doc` pattern matching nothing.
        """
        question = clean_question(question)
        if not 1 <= k <= MAX_K:
            raise UsageError(f"k must be between 1 and {MAX_K}, not {k}", "ask for e.g. 5 passages")
        with self._lock:
            stored = self.stored  # one consistent snapshot even if refresh() swaps it meanwhile
            mask = self.doc_mask(doc)
        query = self.encode_question(question)
        scores, ids = dense_search(stored, query, k, mask)
        return [
            self._hit(rank, float(score), int(i), stored)
            for rank, (score, i) in enumerate(zip(scores, ids, strict=True), start=1)
        ]

    def _hit(self, rank: int, score: float, chunk_id: int, stored: store.StoredIndex) -> Hit:
        c = stored.chunks[chunk_id]
        return Hit(
            rank, score, c.doc, stored.titles.get(c.doc, c.doc), c.section, c.start, c.end, c.text,
            c.page, c.source_start, c.source_end,
        )  # fmt: skip


def _check_model(manifest: dict, embedder: Embedder, index_dir: Path) -> None:
    """Refuse an index built with another model, or vectors of another dimension."""
    if embedder.model_id != manifest["model"]["id"]:
        raise QAError(
            f"the index at {index_dir} was built with model "
            f"{manifest['model']['id']!r}, not {embedder.model_id!r}",
            "run `qa build` with the model you want, or drop --model/QA_MODEL",
        )
    if embedder.dim != manifest["model"]["dim"]:
        raise QAError(
            f"the index at {index_dir} holds {manifest['model']['dim']}-dimensional vectors; "
            f"model {embedder.model_id!r} gives {embedder.dim}",
            "run `qa build` to rebuild the index with this model",
        )


def dense_search(
    stored: store.StoredIndex, query: np.ndarray, k: int, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The k chunks nearest to `query` (shape (1, dim)), best first, as (scores, chunk ids).

    With a mask, only chunks where it is True are ranked: exactly, over their stored vectors,
    so a filtered search returns k passages whenever the allowed chunks number k or more.
    """
    if mask is None:
        scores, ids = stored.dense.search(query, min(k, len(stored.chunks)))
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]
    allowed = np.flatnonzero(mask)
    scores = stored.vectors[allowed] @ query[0]
    top = np.argsort(-scores, kind="stable")[:k]
    return scores[top], allowed[top]
