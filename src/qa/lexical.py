"""Lexical retrieval: BM25 (bm25s) over the passages' words, stemmed, stop words dropped.

Each passage is indexed with its document title and section heading, so a keyword query that
names the topic finds the passages under it. Parameters k1=0.9, b=0.4 (the Anserini defaults)
measured better than bm25s' own defaults on both benchmark sets (see README, "Retrieval quality").
The index is built in memory when a `Searcher` loads (about a second for 16k passages).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

K1 = 0.9
B = 0.4
_WORD = re.compile(r"[a-z0-9]+")


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    """Lucene's 33 English stop words (bm25s "en"): measured better for ranking than a long list."""
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


@lru_cache(maxsize=1)
def _function_words() -> frozenset[str]:
    """A long English stop list (179 words): question words, pronouns, auxiliaries."""
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    return frozenset(STOPWORDS_EN_PLUS) | _stop_words()


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def words(text: str) -> list[str]:
    """Lower-cased words of `text`, accents folded ("Café" -> "cafe"), punctuation dropped."""
    folded = unicodedata.normalize("NFKD", text.lower())
    return _WORD.findall("".join(ch for ch in folded if not unicodedata.combining(ch)))


def tokenize(text: str) -> list[str]:
    """The terms BM25 sees: words without English stop words, Snowball-stemmed, in order."""
    stop = _stop_words()
    return _stemmer().stemWords([w for w in words(text) if w not in stop])


def content_terms(text: str) -> list[str]:
    """The terms of `text` that carry its topic: the long stop list dropped, stemmed, distinct.

    "What should I do about my aching back?" -> ["ach", "back"].
    """
    stop = _function_words()
    return list(dict.fromkeys(_stemmer().stemWords([w for w in words(text) if w not in stop])))


class LexicalIndex:
    """BM25 over a list of texts (one per passage).

    Args:
        texts: the text of each passage (title and heading included by the caller).
        k1, b: BM25 parameters.
    """

    def __init__(self, texts: Sequence[str], k1: float = K1, b: float = B) -> None:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets DEBUG on import

        self.size = len(texts)
        self.terms = [tokenize(t) for t in texts]
        self._postings: dict[str, set[int]] | None = None
        self._bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
        if self.size:
            # a passage without terms still needs a token, or bm25s drops its column
            self._bm25.index([t or [""] for t in self.terms], show_progress=False)

    def scores(self, query: str | Sequence[str]) -> np.ndarray:
        """BM25 score of every passage for a query (text or terms); zeros when nothing matches."""
        terms = tokenize(query) if isinstance(query, str) else list(query)
        out = np.zeros(self.size, dtype=np.float32)
        if not self.size:
            return out
        ids = self._bm25.get_tokens_ids([t for t in terms if t])
        if ids:
            out[:] = self._bm25.get_scores(ids)
        return out

    def passages_with_all(self, terms: Sequence[str], mask: np.ndarray | None = None) -> int:
        """How many passages contain every one of `terms` (0 when `terms` is empty).

        Args:
            terms: stemmed terms (e.g. `content_terms`).
            mask: only passages where the mask is True count.
        """
        if not terms:
            return 0
        if self._postings is None:
            postings: dict[str, set[int]] = {}
            for i, passage_terms in enumerate(self.terms):
                for term in set(passage_terms):
                    postings.setdefault(term, set()).add(i)
            self._postings = postings
        found: set[int] | None = None
        for term in sorted(set(terms), key=lambda t: len(self._postings.get(t, ()))):
            ids = self._postings.get(term, set())
            found = set(ids) if found is None else found & ids
            if not found:
                return 0
        if mask is not None:
            found = {i for i in found if mask[i]}
        return len(found)
