"""Answer highlighting: the sentence (or two) of a passage that best answers the question.

Each sentence of a passage is scored by the cosine of its vector with the question's, plus a
small bonus for the share of the question's terms it contains (so a keyword query lights up
the sentence that has the keyword). The best sentence is highlighted, and the next best too
when it scores almost as well: readers get one or two sentences, never the whole passage
unless it is one sentence long.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from qa.ingest.terms import tokenize
from qa.ingest.text import sentence_spans

TERM_WEIGHT = 0.1  # bonus for a sentence holding every term of the question
MARGIN = 0.008  # a second sentence is highlighted when it scores within this of the best (the
# pair's cosines spread about a quarter as much as MiniLM's alone, whose margin was 0.03)
MAX_SENTENCES = 2

Span = tuple[int, int]


def sentences(text: str) -> list[Span]:
    """The sentences of a passage, as (start, end) offsets into `text`."""
    return sentence_spans(text)


@lru_cache(maxsize=1 << 16)
def _terms(text: str) -> frozenset[str]:
    """The BM25 terms of a sentence; cached, since the same passages are shown again and again."""
    return frozenset(tokenize(text))


def term_share(question_terms: Sequence[str], text: str) -> float:
    """Share of the distinct question terms that occur in `text` (0 when there are none)."""
    wanted = set(question_terms)
    if not wanted:
        return 0.0
    return len(wanted & _terms(text)) / len(wanted)


def sentence_scores(
    query: np.ndarray, vectors: np.ndarray, texts: Sequence[str], question_terms: Sequence[str]
) -> np.ndarray:
    """Score of each sentence, as `choose` takes them: cosine with the question plus the term
    bonus.

    Only sentences that `choose` could pick get the bonus (reading a sentence's terms is most
    of the cost): one whose cosine is more than TERM_WEIGHT + MARGIN below the best cosine
    scores at most that cosine plus TERM_WEIGHT, which is below the best score less the margin
    whatever its terms, so it keeps its bare cosine and the choice is the same.

    Args:
        query: the question's normalised vector, shape (dim,).
        vectors: the sentences' normalised vectors, shape (n, dim).
        texts: the sentences' texts.
        question_terms: the question's stemmed terms (`lexical.content_terms`).
    """
    if not len(texts):
        return np.zeros(0, dtype=np.float32)
    cosine = vectors @ query
    bonus = np.zeros(len(texts), dtype=np.float32)
    if question_terms:
        reach = cosine.max() - TERM_WEIGHT - MARGIN - 1e-4  # (a little slack for rounding)
        for i in np.flatnonzero(cosine >= reach):
            bonus[i] = term_share(question_terms, texts[i])
    return cosine + TERM_WEIGHT * bonus


def choose(spans: Sequence[Span], scores: np.ndarray) -> tuple[Span, ...]:
    """The best span, and the runner-up when within `MARGIN` of it; in reading order."""
    if not len(spans):
        return ()
    order = np.argsort(-np.asarray(scores), kind="stable")
    best = float(scores[order[0]])
    picked = [int(i) for i in order[:MAX_SENTENCES] if best - float(scores[i]) <= MARGIN]
    return tuple(spans[i] for i in sorted(picked))
