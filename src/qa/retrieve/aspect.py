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

Measured in the README ("Retrieval quality"): medquad-small nDCG@10 0.857 -> 0.886 with the
report's questions unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from qa.ingest.sentences import SentenceIndex
from qa.retrieve import lexical

_WORD = re.compile(r"\w+")


class Headings:
    """The heading each passage was embedded under (`chunking.embed_context`), as groups.

    Args:
        contexts: one heading per passage, in chunk order.
    """

    def __init__(self, contexts: Sequence[str]) -> None:
        ids: dict[str, int] = {}
        self.group = np.array([ids.setdefault(c, len(ids)) for c in contexts], dtype=np.int64)
        self.stems = [frozenset(lexical.stems(lexical.words(c))) for c in ids]


def token_words(question: str, offsets: np.ndarray) -> list[tuple[str, str] | None]:
    """For each token of the question, (word, stem) of the word it belongs to; None for special
    tokens and punctuation. `offsets`: the tokens' character offsets in `question`."""
    spans = [(m.start(), m.end(), lexical.words(m.group())) for m in _WORD.finditer(question)]
    out: list[tuple[str, str] | None] = []
    for start, end in offsets:
        found = None
        if end > start:
            for a, b, words in spans:
                if a <= start < b and words:
                    found = words[0]
                    break
        out.append(found)
    stemmed = lexical.stems([w for w in out if w is not None])
    it = iter(stemmed)
    return [None if w is None else (w, next(it)) for w in out]


def aspect_vector(
    hidden: np.ndarray, words: Sequence[tuple[str, str] | None], heading: frozenset[str]
) -> np.ndarray | None:
    """The question's vector without the heading's words (normalised), or None when the heading
    takes no word away or leaves no content word."""
    keep = [i for i, w in enumerate(words) if w is not None and w[1] not in heading]
    removed = any(w is not None and w[1] in heading for w in words)
    if not removed or not any(not lexical.is_function_word(words[i][0]) for i in keep):
        return None
    vector = hidden[keep].mean(axis=0)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def rescore(
    best_sentence: np.ndarray,
    ids: np.ndarray,
    question: str,
    hidden: np.ndarray,
    offsets: np.ndarray,
    headings: Headings,
    sentence_index: SentenceIndex,
) -> np.ndarray:
    """The best-sentence scores of candidate passages `ids`, ordered inside each heading group
    by the aspect score (see the module text).

    Args:
        best_sentence: each candidate's best sentence cosine with the whole question.
        ids: the candidates' chunk ids.
        question: the question as embedded; `hidden` and `offsets` are its token outputs and
            their character offsets (`Embedder.encode_query`).
        headings: the build's headings.
        sentence_index: the build's sentence vectors.
    """
    out = np.asarray(best_sentence, dtype=np.float32).copy()
    found, inverse, counts = np.unique(headings.group[ids], return_inverse=True,
                                       return_counts=True)
    if counts.max(initial=0) < 2:  # a passage alone under its heading keeps its score
        return out
    words = token_words(question, offsets)
    asked = {w[1] for w in words if w is not None}
    vectors: list[np.ndarray] = []
    by_removed: dict[frozenset[str], int] = {}  # headings that take the same words away
    which = np.full(len(found), -1)
    for k in np.flatnonzero(counts > 1):
        removed = frozenset(asked & headings.stems[found[k]])
        if removed not in by_removed:
            vector = aspect_vector(hidden, words, removed)
            by_removed[removed] = -1 if vector is None else len(vectors)
            if vector is not None:
                vectors.append(vector.astype(np.float32))
        which[k] = by_removed[removed]
    members = np.flatnonzero(which[inverse] >= 0)
    if not len(members):
        return out
    group = inverse[members]
    scores = sentence_index.best(np.stack(vectors), ids[members], which[group])
    best_of_group = np.full(len(found), -np.inf, dtype=np.float32)
    np.maximum.at(best_of_group, group, out[members])
    best_aspect = np.full(len(found), -np.inf, dtype=np.float32)
    np.maximum.at(best_aspect, group, scores)
    out[members] = best_of_group[group] + scores - best_aspect[group]
    return out
