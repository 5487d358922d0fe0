"""What a search returns: `Hit`s (passages with citation data and highlights) in an `Answer`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from qa.embed.embedder import Embedder
from qa.ingest.text import normalize
from qa.retrieve import answered, highlight
from qa.retrieve.ranking import Ranking


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
            the question; empty unless the passage is a good or strong match (a confidence of
            at least `answered.GOOD`).
        confidence: the calibrated probability that this passage answers the question (never
            above the answer's; see `qa.retrieve.answered`).
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
    confidence: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> dict:
        """The hit as `qa ask --json` and `POST /ask` give it (see `Answer.to_json`)."""
        return {
            "rank": self.rank,
            "score": self.score,
            "doc": self.doc,
            "title": self.title,
            "section": self.section,
            "page": self.page,
            "start": self.start,
            "end": self.end,
            "source_start": self.source_start,
            "source_end": self.source_end,
            "text": self.text,
            "highlights": [[start, end] for start, end in self.highlights],
            "confidence": self.confidence,
        }


@dataclass(frozen=True)
class Answer:
    """The reply to one question.

    Attributes:
        question: the question as searched (cleaned).
        hits: the passages, best first.
        answered: False when the documents do not seem to cover the question (the hits are
            then only the closest passages).
        mode: the retrieval mode used.
        truncated: whether the question was cut: to `searcher.MAX_QUESTION_CHARS` characters,
            or to the model's window.
        confidence: the calibrated probability that the documents answer the question;
            `answered` is exactly `confidence >= answered.threshold()` (see
            `qa.retrieve.answered`).
        missing_terms: the question's key words that appear nowhere in the documents
            (`qa.retrieve.missing`); empty when none.
    """

    question: str
    hits: list[Hit]
    answered: bool
    mode: str
    truncated: bool
    confidence: float = 0.0
    missing_terms: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "answered": self.answered,
            "mode": self.mode,
            "truncated": self.truncated,
            "confidence": self.confidence,
            "missing_terms": list(self.missing_terms),
            "hits": [h.to_dict() for h in self.hits],
        }

    def to_json(self, asked: str | None = None) -> dict:
        """The JSON object of this answer: what `qa ask --json` prints and `POST /ask` returns.

        One schema for both (`qa.api.schema.AnswerModel` describes it): `question`, `answered`,
        `confidence`, `missing_terms`, `mode`, `truncated`, and `hits`, each with `rank`,
        `score`, `doc`, `title`, `section`, `page`, `start`, `end`, `source_start`,
        `source_end`, `text`, `highlights` (a list of [start, end] offsets into `text`) and
        `confidence`.

        Args:
            asked: the question as the caller asked it, reported as `question` (default: the
                question as searched, white space collapsed).
        """
        return {
            "question": self.question if asked is None else asked,
            "answered": self.answered,
            "confidence": self.confidence,
            "missing_terms": list(self.missing_terms),
            "mode": self.mode,
            "truncated": self.truncated,
            "hits": [h.to_json() for h in self.hits],
        }


def hits(ranking: Ranking, words: list[str], embedder: Embedder,
         confidences: list[float]) -> list[Hit]:  # fmt: skip
    """The ranked passages as hits, with their confidence; those that are good or strong
    matches (a confidence of at least `answered.GOOD`) with their best sentences highlighted.

    `words`: the question's content words (the highlights' term bonus)."""
    out = []
    passages = ranking.passages
    for i, (chunk, title) in enumerate(zip(passages.chunks, passages.titles, strict=True)):
        marks = highlights(ranking, i, words, embedder) if confidences[i] >= answered.GOOD else ()
        out.append(Hit(
            i + 1, float(ranking.scores[i]), chunk.doc, title, chunk.section, chunk.start,
            chunk.end, chunk.text, chunk.page, chunk.source_start, chunk.source_end, marks,
            confidences[i],
        ))  # fmt: skip
    return out


def highlights(
    ranking: Ranking, i: int, words: list[str], embedder: Embedder
) -> tuple[tuple[int, int], ...]:
    """The sentences of ranked passage i that best answer the question (offsets in its text).

    `words`: the question's content words (`terms.content_terms`) for the term bonus.
    """
    passages = ranking.passages
    text = passages.chunks[i].text
    rows = passages.sentence_rows(i)
    if rows.stop > rows.start:
        spans = [(s, e) for s, e in passages.spans[rows].tolist()]
        vectors = passages.sentence_vectors[rows]
    else:  # a generation without sentence vectors: embed this passage's sentences now
        spans = highlight.sentences(text)
        vectors = embedder.encode([normalize(text[s:e]) for s, e in spans])
    texts = [text[s:e] for s, e in spans]
    scores = highlight.sentence_scores(ranking.query, vectors, texts, words)
    return highlight.choose(spans, np.asarray(scores))
