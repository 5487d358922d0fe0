"""Search: the `Searcher` that the CLI and the page share, returning typed `Hit`s."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from qa import config
from qa.embed.embedder import Embedder, vector_id
from qa.errors import QAError, UsageError
from qa.ingest import sentences
from qa.ingest.chunking import embed_context, embed_text
from qa.ingest.text import normalize
from qa.present.citation import cite
from qa.retrieve import answered, aspect, docfilter, highlight, lexical, rerank
from qa.retrieve.fusion import DEFAULT_MODE, MODES, score_fusion
from qa.retrieve.lexical import LexicalIndex, content_terms, tokenize
from qa.retrieve.rerank import Reranker
from qa.store import faiss_index as vector_index
from qa.store import local as store

MAX_K = 1000
CANDIDATES = 100  # passages each retriever contributes to a hybrid ranking


@dataclass(frozen=True)
class Hit:
    """One ranked passage.

    Attributes:
        rank: 1 for the best passage.
        score: higher is better. Dense: cosine of question and passage; hybrid: that cosine
            plus a lexical bonus of at most `fusion.LEXICAL_WEIGHT`; lexical: the BM25 score.
        doc: document path relative to the corpus folder.
        title: the document's title.
        section: the heading the passage stands under, or None.
        start, end: character offsets of the passage in the loaded document text.
        text: the passage, exactly as in the loaded text (plain, without markup).
        page: the 1-based page of a PDF the passage is on, else None.
        source_start, source_end: where the passage is in the file's decoded text (.txt and
            .md files), else None.
        highlights: (start, end) offsets, relative to `text`, of the sentences that best answer
            the question; empty when the documents do not seem to cover it.
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
    highlights: tuple[tuple[int, int], ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)

    def citation(self) -> str:
        """Where the passage comes from, for a reader: "title, section, p. N"."""
        return cite(self.title, self.section, self.page)


@dataclass(frozen=True)
class Answer:
    """The reply to one question.

    Attributes:
        question: the question as searched (cleaned).
        hits: the passages, best first.
        answered: False when the documents do not seem to cover the question (the hits are
            then only the closest passages).
        mode: the retrieval mode used.
        truncated: whether the question was cut to the model's window.
    """

    question: str
    hits: list[Hit]
    answered: bool
    mode: str
    truncated: bool

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "answered": self.answered,
            "mode": self.mode,
            "truncated": self.truncated,
            "hits": [h.to_dict() for h in self.hits],
        }


@dataclass
class Ranking:
    """A ranking of passages, with what was learnt about the question on the way."""

    stored: store.StoredIndex  # the build it ranks
    ids: np.ndarray  # chunk ids, best first
    scores: np.ndarray  # their scores (mode-dependent; higher is better)
    query: np.ndarray  # the question's vector, shape (1, dim)
    terms: list[str]  # the question's lexical terms
    best_cosine: float  # the highest cosine of any allowed passage (-1 if none)
    truncated: bool
    mode: str
    mask: np.ndarray | None = None  # the passages the document filter allowed (None: all)


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


def lexical_texts(chunks, titles: dict[str, str]) -> list[str]:
    """What BM25 indexes for each chunk: its document's title, its section and its text."""
    return [lexical.passage_text(titles.get(c.doc) or c.doc, c.section, c.text) for c in chunks]


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
        reranker: a CrossEncoder (name, local folder, or a `Reranker`) to reorder the first
            passages with; None means $QA_RERANKER, else no reranking.

    Raises:
        QAError: no index, a damaged index, or an index built with another model.
    """

    def __init__(
        self,
        index_dir: str | os.PathLike | None = None,
        model: str | None = None,
        embedder: Embedder | None = None,
        reranker: str | Reranker | None = None,
    ) -> None:
        self.index_dir = config.index_dir(index_dir)
        self._lock = threading.Lock()  # guards the swap of the index snapshot
        self._refresh_lock = threading.Lock()  # one refresh loads at a time
        self._per_build_lock = threading.Lock()  # one making of per-build data at a time
        self._per_build: dict[str, tuple[store.StoredIndex, object]] = {}  # BM25, sentences...
        self._load(store.load(self.index_dir))
        wanted = model or os.environ.get("QA_MODEL")
        if embedder is None:
            embedder = Embedder(wanted or self.manifest["model"]["id"],
                                backend=self.manifest["model"].get("backend", "torch"))
        _check_model(self.manifest, embedder, self.index_dir)
        self.embedder = embedder
        self._local = threading.local()  # per thread: whether its last question was cut
        if not isinstance(reranker, Reranker):
            name = rerank.configured(reranker)
            reranker = Reranker(name) if name else None
        self.reranker: Reranker | None = reranker

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

        Every ranking honours it before ranking. See `qa.retrieve.docfilter` for what a pattern
        matches.

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
        return self._passage_text(self.stored, chunk_id)

    def _passage_text(self, stored: store.StoredIndex, chunk_id: int) -> str:
        c = stored.chunks[chunk_id]
        return embed_text(c.section, stored.titles.get(c.doc, ""), c.text)

    def encode_question(self, question: str) -> np.ndarray:
        """Embed a question (cut to the model window); shape (1, dim)."""
        text, self._local.truncated = self.embedder.truncate(question)
        return self.embedder.encode([text])

    def _for_build(self, name: str, stored: store.StoredIndex | None, make: Callable):
        """What `make(stored)` gives for a build, made once per build and kept until the
        searcher moves to another one (`name` tells the kinds apart)."""
        stored = stored or self.stored
        with self._per_build_lock:
            cached = self._per_build.get(name)
            if cached is None or cached[0] is not stored:
                cached = (stored, make(stored))
                self._per_build[name] = cached
            return cached[1]

    def lexical_index(self, stored: store.StoredIndex | None = None) -> LexicalIndex:
        """The BM25 index of a build: as stored with it, else computed on first use."""

        def make(stored: store.StoredIndex) -> LexicalIndex:
            if (stored.manifest.get("lexical") or {}).get("version") == lexical.VERSION:
                index = LexicalIndex.from_arrays(stored.arrays, len(stored.chunks))
                if index is not None:
                    return index
            return LexicalIndex.build(lexical_texts(stored.chunks, stored.titles))

        return self._for_build("lexical", stored, make)

    def headings(self, stored: store.StoredIndex | None = None) -> aspect.Headings:
        """The heading each passage of a build was embedded under (made once per build)."""
        return self._for_build("headings", stored, lambda stored: aspect.Headings(
            [embed_context(c.section, stored.titles.get(c.doc, "")) for c in stored.chunks]
        ))  # fmt: skip

    def sentence_index(
        self, stored: store.StoredIndex | None = None
    ) -> sentences.SentenceIndex | None:
        """The sentence vectors of a build, or None for a build made before they were stored."""

        def make(stored: store.StoredIndex) -> sentences.SentenceIndex | None:
            table = stored.arrays.get(sentences.TABLE)
            vectors = stored.arrays.get(sentences.VECTORS)
            if table is None or vectors is None or len(table) != len(vectors):
                return None
            return sentences.SentenceIndex(table, vectors, len(stored.chunks))

        return self._for_build("sentences", stored, make)

    def rank(
        self, question: str, n: int, mode: str | None = None, doc: docfilter.Patterns = None
    ) -> Ranking:
        """The n best passages for `question` in a retrieval mode, as chunk ids and scores.

        The question must already be cleaned (see `clean_question`); `ask` is the public way in.
        """
        mode = resolve_mode(mode)
        with self._lock:
            stored = self.stored  # one consistent snapshot even if refresh() swaps it meanwhile
            mask = self.doc_mask(doc)
        text, truncated = self.embedder.truncate(question)
        self._local.truncated = truncated
        query, hidden, offsets = self.embedder.encode_query(text)
        terms = tokenize(question)
        wanted = max(n, rerank.DEPTH) if self.reranker is not None else n
        pool = max(wanted, CANDIDATES)
        dense_scores, dense_ids = dense_search(
            stored, query, pool if mode != "dense" else wanted, mask
        )
        best_cosine = float(dense_scores[0]) if len(dense_scores) else -1.0
        if mode == "dense":
            ids, scores = dense_ids, dense_scores
        else:
            lexical = self.lexical_index(stored).scores(terms)
            if mask is not None:
                lexical[~mask] = 0.0
            matched = np.flatnonzero(lexical > 0)
            lexical_top = matched[top_k(lexical[matched], pool)]
            if mode == "lexical":
                ids, scores = lexical_top, lexical[lexical_top]
            else:
                ids = np.union1d(dense_ids, lexical_top)
                cosine = stored.vectors[ids] @ query[0]
                sentence_index = self.sentence_index(stored)
                best_sentence = None
                if sentence_index is not None:
                    best_sentence = sentence_index.best(query[0], ids)
                    if hidden is not None:  # ordered by what is asked beyond the heading
                        best_sentence = aspect.rescore(best_sentence, ids, text, hidden, offsets,
                                                       self.headings(stored), sentence_index)
                scores = score_fusion(
                    cosine, lexical[ids], float(lexical.max(initial=0.0)), best_sentence
                )
            order = np.lexsort((ids, -scores))[:wanted]  # best first; ties by passage order
            ids, scores = ids[order], scores[order]
        if self.reranker is not None and len(ids):
            passages = [self._passage_text(stored, int(i)) for i in ids]
            ids, scores = self.reranker.rerank(question, ids, passages)
        return Ranking(stored, ids[:n].astype(np.int64), scores[:n].astype(np.float32), query,
                       terms, best_cosine, truncated, mode, mask)

    def ask(
        self, question: str, k: int = 5, mode: str | None = None, doc: docfilter.Patterns = None
    ) -> Answer:
        """Answer `question`: the k best passages, whether they answer it, highlights.

        Args:
            question: the question, in plain words.
            k: how many passages to return (fewer when the index, or the filter, has fewer).
            mode: "dense", "lexical" or "hybrid"; None means the default (`DEFAULT_MODE`).
            doc: only passages of documents matching these glob patterns (see
                `qa.retrieve.docfilter`).

        Raises:
            UsageError: empty question, k out of range, unknown mode, or a `doc` pattern
                matching nothing.
        """
        question = clean_question(question)
        if not 1 <= k <= MAX_K:
            raise UsageError(f"k must be between 1 and {MAX_K}, not {k}", "ask for e.g. 5 passages")
        ranking = self.rank(question, k, mode, doc)
        words = content_terms(question)
        covered = self.is_answered(question, ranking, words)
        hits = []
        for rank, (score, i) in enumerate(zip(ranking.scores, ranking.ids, strict=True), start=1):
            hit = self._hit(rank, float(score), int(i), ranking.stored)
            if covered:
                hit = replace(hit, highlights=self.highlights(int(i), ranking, words))
            hits.append(hit)
        return Answer(question, hits, covered, ranking.mode, ranking.truncated)

    def is_answered(self, question: str, ranking: Ranking, words: list[str] | None = None) -> bool:
        """Whether the documents seem to cover the question (see `qa.retrieve.answered`).

        `words`: the question's content words when the caller has them already.
        """
        if answered.is_answered(ranking.best_cosine, 0):
            return True
        lexical = self.lexical_index(ranking.stored)
        words = content_terms(question) if words is None else words
        with_all = lexical.passages_with_all(words, ranking.mask)
        return answered.is_answered(ranking.best_cosine, with_all)

    def highlights(
        self, chunk_id: int, ranking: Ranking, words: list[str] | None = None
    ) -> tuple[tuple[int, int], ...]:
        """The sentences of a passage that best answer the ranked question (offsets in its text).

        `words`: the question's content words (`lexical.content_terms`) for the term bonus;
        None uses its BM25 terms.
        """
        text = ranking.stored.chunks[chunk_id].text
        sentence_index = self.sentence_index(ranking.stored)
        if sentence_index is not None:
            spans = sentence_index.spans(chunk_id)
            vectors = sentence_index.vectors[sentence_index.rows(chunk_id)]
        else:  # a build without sentence vectors: embed this passage's sentences now
            spans = highlight.sentences(text)
            vectors = self.embedder.encode([normalize(text[s:e]) for s, e in spans])
        texts = [text[s:e] for s, e in spans]
        terms = ranking.terms if words is None else words
        scores = highlight.sentence_scores(ranking.query[0], vectors, texts, terms)
        return highlight.choose(spans, scores)

    def search(
        self, question: str, k: int = 5, mode: str | None = None, doc: docfilter.Patterns = None
    ) -> list[Hit]:
        """The k passages that best answer `question`, best first: `ask(...).hits`."""
        return self.ask(question, k, mode, doc).hits

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
    backend = manifest["model"].get("backend", "torch")
    if vector_id(manifest["model"]["id"], backend) != embedder.vector_id:
        raise QAError(
            f"the index at {index_dir} was embedded with the {backend} backend, "
            f"not {embedder.backend}",
            f"search it with backend {backend}, or rebuild it with --backend {embedder.backend}",
        )


def dense_search(
    stored: store.StoredIndex, query: np.ndarray, k: int, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The k chunks nearest to `query` (shape (1, dim)), best first, as (scores, chunk ids).

    With a mask, only chunks where it is True are ranked: exactly, over their stored vectors,
    so a filtered search returns k passages whenever the allowed chunks number k or more.
    """
    if mask is None:
        scores, ids = vector_index.search(stored.dense, query, min(k, len(stored.chunks)))
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]
    allowed = np.flatnonzero(mask)
    scores = stored.vectors[allowed] @ query[0]
    top = top_k(scores, k)
    return scores[top], allowed[top]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores, best first, ties in position order: what a stable
    sort of all scores gives, without sorting them all (tens of thousands per question)."""
    if len(scores) > k > 0:
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]  # the k-th highest score
        candidates = np.flatnonzero(scores >= kth)
    else:
        candidates = np.arange(len(scores))
    return candidates[np.lexsort((candidates, -scores[candidates]))][:k]
