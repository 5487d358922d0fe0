"""What the documents lack: the question's key words that appear nowhere in them.

"What is the best mattress for back pain?" asked of a report that never says "mattress" finds
passages about back pain, and their cosines alone cannot tell that the question's point is
missing. So the answer names such words (`Answer.missing_terms`): the page shows them ("Not in
the documents: mattress"), and an answer that lacks one is at most a weak match.

A word is a *key word* when it is neither a function word (the long stop list of
`qa.ingest.terms`) nor a word every question uses: a word as common in English as "best",
"help", "idea" or "people" (a Zipf frequency of at least `COMMON_ZIPF` in wordfreq's English
list, a frequency table over subtitles, books, Wikipedia and the web, kept as a word list,
`common_words.txt`, written by scripts/common_words.py; the threshold was chosen on the tuning
half of the reader questions: the highest that left at most 1 in 5 of them with a notice;
docs/retrieval.md). A key word is *in the documents* when its stem is in the index's
vocabulary (the BM25 terms, stemmed the same way),
or a stem close to it in spelling is (a Levenshtein similarity of at least `SPELLING`, the
first letter the same, for words of `MIN_FUZZY` letters or more): "chiropracter" is there as
"chiropractic", "thorasic" as "thoracic".

Key words are only looked for in English questions (`qa.embed.weights.english`): the stemmer,
the stop list and the frequency table are English, and the vocabulary of an English corpus
holds no Spanish word, which would otherwise all be named.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from qa.ingest import terms

COMMON_ZIPF = 4.0  # wordfreq Zipf frequency (log10 of uses per billion words) of common words
COMMON_WORDS_FILE = Path(__file__).with_name("common_words.txt")
SPELLING = 80.0  # rapidfuzz ratio (0-100) from which a stem counts as the same word misspelt
MIN_FUZZY = 5  # shorter words must be spelt as in the documents ("gp" is not "go")
ENGLISH = 0.5  # the probability of English from which a question's words are looked for


@lru_cache(maxsize=1)
def _common() -> frozenset[str]:
    lines = COMMON_WORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def is_common(word: str) -> bool:
    """Whether a lower-cased word is one every question may use (see the module text)."""
    return word in _common()


def key_words(question: str) -> list[str]:
    """The question's key words, lower-cased, accents folded, in order, each once."""
    found = [w for w in terms.words(question)
             if w.isalpha() and not terms.is_function_word(w) and not is_common(w)]
    return list(dict.fromkeys(found))


def absent(words: list[str], vocabulary) -> list[bool]:
    """For each key word, whether neither its stem nor a near spelling is in `vocabulary` (a
    container of stems; iterated only when a stem is not in it as it is). A near spelling is
    close to the word's stem or to the word itself (a stem is a word's beginning: "thorac")."""
    out = []
    choices = None
    for word, stem in zip(words, terms.stems(words), strict=True):
        if stem in vocabulary:
            out.append(False)
            continue
        if len(word) < MIN_FUZZY:
            out.append(True)
            continue
        if choices is None:
            choices = [t for t in vocabulary if len(t) >= MIN_FUZZY - 1]
        out.append(not (_near(stem, choices) or _near(word, choices)))
    return out


def _near(text: str, choices: list[str]) -> bool:
    from rapidfuzz import fuzz, process

    same_start = [c for c in choices if c[0] == text[0]]
    return process.extractOne(text, same_start, scorer=fuzz.ratio, score_cutoff=SPELLING) \
        is not None


def missing_terms(question: str, vocabulary, english: float) -> list[str]:
    """The key words of `question` that the documents lack (see the module text).

    Args:
        question: the question as searched.
        vocabulary: the generation's stemmed terms (`Generation.vocabulary`).
        english: the probability that the question is English.
    """
    if english < ENGLISH:
        return []
    words = key_words(question)
    flags = absent(words, vocabulary)
    return [w for w, missing in zip(words, flags, strict=True) if missing]
