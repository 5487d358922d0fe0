"""Terms: the words of a text as lexical search sees them, for indexing and for questions alike.

Lower-cased, accents folded, punctuation dropped; BM25 terms drop Lucene's 33 English stop words
and are Snowball-stemmed. `content_terms` drops a long stop list instead (question words,
pronouns, auxiliaries): the words that carry a question's topic.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

MAX_TERM = 40  # longer "words" are noise (hashes, URLs); they are dropped
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
    folded = text.lower()
    if not folded.isascii():  # (ASCII text has nothing to fold: the common case, kept fast)
        folded = unicodedata.normalize("NFKD", folded)
        folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return [w for w in _WORD.findall(folded) if len(w) <= MAX_TERM]


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


def stems(words_: Sequence[str]) -> list[str]:
    """Snowball stems of lower-cased words (as `words` gives them), in order."""
    return _stemmer().stemWords(list(words_))


def is_function_word(word: str) -> bool:
    """Whether a lower-cased word is on the long stop list (question words, pronouns...)."""
    return word in _function_words()


def passage_text(title: str, section: str | None, text: str) -> str:
    """What BM25 indexes for a passage: the document title, the section heading, the text."""
    return " ".join(part for part in (title, section, text) if part)
