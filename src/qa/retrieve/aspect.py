"""What a question asks beyond a heading: the aspect scores of hybrid search.

Passages under one heading share what the heading names ("Smith-Lemli-Opitz syndrome",
"Chronic Middle Back Pain Causes"), and each is embedded under it. A question that names it too
("What are the genetic changes related to Smith-Lemli-Opitz syndrome?") then matches all of
them alike, and the part that tells them apart ("the genetic changes") weighs little. So, for
candidate passages that share a heading, hybrid search scores each one's sentences against the
question without the heading's words: the mean of the model's outputs for the question's
other tokens, taken from the question's own forward pass (no second model call), compared with
the sentence vectors, which are pooled the same way from their passage's pass.

The passages of a group are ordered by that aspect score, while the group keeps the best
sentence score it had: a group's best passage (by aspect) gets the group's best sentence
score, the others that minus how far their aspect score is below it. Passages under different
headings therefore compare as before; only the order inside a group changes. A group is left
as it is when the heading shares no word with the question (nothing to take away) or when no
content word is left once the heading's words are taken away ("What causes mid back pain?"
under "Chronic Middle Back Pain Causes").

Measured in docs/retrieval.md: medquad-small nDCG@10 0.857 -> 0.886 with the
report's questions unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np

from qa.ingest import terms
from qa.ingest.chunking import embed_context
from qa.retrieve.best_sentence import best_sentence
from qa.store.base import Passages

_WORD = re.compile(r"\w+")


@lru_cache(maxsize=1 << 14)
def heading_stems(heading: str) -> frozenset[str]:
    """The stems of a heading's words (cached: the same headings come up again and again)."""
    return frozenset(terms.stems(terms.words(heading)))


@lru_cache(maxsize=1 << 16)
def _heading(section: str | None, title: str) -> str:
    return embed_context(section, title)


def headings(passages: Passages) -> list[str]:
    """The heading each passage was embedded under (`chunking.embed_context`; cached, as the
    same few headings come up for question after question)."""
    return [_heading(c.section, t) for c, t in zip(passages.chunks, passages.titles,
                                                   strict=True)]


def token_words(question: str, offsets: np.ndarray) -> list[tuple[str, str] | None]:
    """For each token of the question, (word, stem) of the word it belongs to; None for special
    tokens and punctuation. `offsets`: the tokens' character offsets in `question`."""
    spans = [(m.start(), m.end(), terms.words(m.group())) for m in _WORD.finditer(question)]
    out: list[tuple[str, str] | None] = []
    for start, end in np.asarray(offsets).tolist():
        found = None
        if end > start:
            for a, b, words in spans:
                if a <= start < b and words:
                    found = words[0]
                    break
        out.append(found)
    stemmed = terms.stems([w for w in out if w is not None])
    it = iter(stemmed)
    return [None if w is None else (w, next(it)) for w in out]


def aspect_vector(
    hidden: np.ndarray, words: Sequence[tuple[str, str] | None], heading: frozenset[str]
) -> np.ndarray | None:
    """The question's vector without the heading's words (normalised), or None when the heading
    takes no word away or leaves no content word."""
    keep = [i for i, w in enumerate(words) if w is not None and w[1] not in heading]
    removed = any(w is not None and w[1] in heading for w in words)
    if not removed or not any(not terms.is_function_word(words[i][0]) for i in keep):
        return None
    vector = hidden[keep].mean(axis=0)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def rescore(
    best: np.ndarray,
    passages: Passages,
    question: str,
    tokens: list[tuple[np.ndarray, np.ndarray]],
    join: Callable[[list[np.ndarray]], np.ndarray],
) -> np.ndarray:
    """The best-sentence scores of candidate passages, ordered inside each heading group by the
    aspect score (see the module text).

    Args:
        best: each candidate's best sentence cosine with the whole question.
        passages: the candidates, with their sentence vectors.
        question: the question as embedded; `tokens` holds each model's token outputs of it and
            their character offsets (`Embedder.encode_question`).
        join: makes one question vector of each model's aspect vector (with the question's
            model weights: `Embedder.join_question`).
    """
    out = np.asarray(best, dtype=np.float32).copy()
    ids: dict[str, int] = {}
    inverse = np.array([ids.setdefault(h, len(ids)) for h in headings(passages)], np.int64)
    counts = np.bincount(inverse, minlength=len(ids))  # passages under each heading
    if counts.max(initial=0) < 2:  # a passage alone under its heading keeps its score
        return out
    names = list(ids)
    words = [token_words(question, offsets) for _, offsets in tokens]  # per model
    asked = {w[1] for w in words[0] if w is not None}
    vectors: list[np.ndarray] = []
    by_removed: dict[frozenset[str], int] = {}  # headings that take the same words away
    which = np.full(len(names), -1)
    for k in np.flatnonzero(counts > 1):
        removed = frozenset(asked & heading_stems(names[k]))
        if removed not in by_removed:
            parts = [aspect_vector(hidden, w, removed)
                     for (hidden, _), w in zip(tokens, words, strict=True)]
            ok = all(v is not None for v in parts)
            by_removed[removed] = len(vectors) if ok else -1
            if ok:
                vectors.append(join(parts).astype(np.float32))
        which[k] = by_removed[removed]
    members = np.flatnonzero(which[inverse] >= 0)
    if not len(members):
        return out
    group = inverse[members]
    scores = best_sentence(passages, np.stack(vectors), members, which[group])
    best_of_group = np.full(len(names), -np.inf, dtype=np.float32)
    np.maximum.at(best_of_group, group, out[members])
    best_aspect = np.full(len(names), -np.inf, dtype=np.float32)
    np.maximum.at(best_aspect, group, scores)
    out[members] = best_of_group[group] + scores - best_aspect[group]
    return out
