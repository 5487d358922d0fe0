"""Is the question covered? One calibrated number, `confidence`, and the decision read from it.

One logistic model over a few generic features of a passage and the question:

    cosine     the passage's cosine with the question (the pair's weighted mean), above the
               corpus's null level
    sentence   the best cosine of one of its sentences with the question, above the null level
    known      the share of the question's key words the documents hold (`qa.retrieve.missing`;
               1 for a question whose words cannot be looked up: not English, or no key word)
    terms      log(1 + number of key words): a question with few topic words is vaguer
    size       log10(1 + passages in the index): the best of many passages is closer to any
               question by chance

The null level is what a question about nothing in the corpus still scores: a build asks the
questions of `probes.txt` (cooking, travel, programming...) and records, for each model, the mean
of their best cosines in the manifest; a question's null level is the weighted mean with its
own model weights. It grows with the corpus (the best of 40,000 passages is higher than the best
of 12 for any question), so reading cosines above it lets one model serve a 12-passage report and
a 40,000-passage collection alike.

Each passage's confidence is the model's probability from that passage's own features, so the
number of a question and a passage does not depend on which other passages rank beside it; no
passage is above the first's, which is the answer's `confidence`. The documents cover the
question exactly when `confidence >= threshold()` (the fitted threshold, `answered_model.json`),
and the page's labels are bands of the same number (`BANDS`): a passage under the threshold is
"hardly related", so no passage of an answer that is not covered is labelled above that. An
answer whose question has key words the documents lack (`Answer.missing_terms`) has its numbers
held under `GOOD`: it is at most a weak match, with nothing highlighted (its point is not in
the documents, whatever else its passages share with it).

The coefficients and the threshold are fitted by `benchmarks/train_answered.py` on labelled
questions (the tuning halves of the report's reader questions and of the questions in other
languages, the older report questions, off-topic questions, MedQuAD questions against their own
collection and against the report), never on the locked halves. The threshold keeps answerable
questions wrongly flagged at or under 2% of the report questions used (the target is at most
one in a set of ~50, and a reader wrongly told "not covered" is the worst failure) - see
docs/retrieval.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import astuple, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from qa.config import model_ids
from qa.ingest.terms import words
from qa.retrieve import adapter, missing
from qa.store.base import Generation, Passages

MODEL_FILE = Path(__file__).with_name("answered_model.json")
PROBES_FILE = Path(__file__).with_name("probes.txt")
FEATURES = ("cosine", "sentence", "known", "terms", "size")
NULL_VERSION = 3  # of the probes and the record; a manifest recording another is not read
_PROBE_VECTORS: dict[str, list[np.ndarray]] = {}  # vector space -> the probes' vectors per model
STRONG = 0.75  # the band of a strong match starts here
GOOD = 0.5  # the band of a good match starts here: from here up a passage's best sentences are
# highlighted (a weak match's are not: nothing is marked that does not answer); a question
# lacking key words stays below
BANDS = ((STRONG, "strong match"), (GOOD, "good match"))  # above the threshold: "weak match"


def probes() -> list[str]:
    """The questions about nothing (`probes.txt`)."""
    lines = PROBES_FILE.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def null_record(embedder) -> dict:
    """Where questions about nothing in the corpus point, as a build records it in the
    manifest ("answered"): the mean vector of the probe questions (`probes.txt`), per model, as
    the ranking reads questions (through the query adapter). A passage's null level is then its
    own cosine with that mean, so it depends on the passage alone, never on which other
    documents the corpus holds.

    Args:
        embedder: the build's models (encodes the probes once per process and vector space;
            `Embedder.member_questions`).
    """
    if embedder.vector_id not in _PROBE_VECTORS:
        _PROBE_VECTORS[embedder.vector_id] = [  # as the ranking reads questions
            adapter.adapt(q, model) for q, model in zip(
                embedder.member_questions(probes()), model_ids(embedder.model_id),
                strict=True)]  # fmt: skip
    queries = _PROBE_VECTORS[embedder.vector_id]  # one (probes, dim_i) per model
    return {"version": NULL_VERSION, "probes": len(queries[0]),  # (+ 0.0: no "-0.0", which a
            "centre": [[round(float(v), 6) + 0.0 for v in q.mean(axis=0)]  # database's JSON
                       for q in queries]}  # keeps as 0, unsealing the manifest's checksum)


def centres(manifest: dict) -> list[np.ndarray] | None:
    """Each model's mean probe vector, as the build recorded it (None: an older build)."""
    recorded = manifest.get("answered")
    if isinstance(recorded, dict) and recorded.get("version") == NULL_VERSION:
        try:
            return [np.asarray(c, dtype=np.float32) for c in recorded["centre"]]
        except (KeyError, TypeError, ValueError):
            return None
    return None


@dataclass(frozen=True)
class Evidence:
    """The features of one passage for one question (see the module text)."""

    cosine: float
    sentence: float
    known: float
    terms: float
    size: float

    def vector(self) -> np.ndarray:
        return np.array(astuple(self), dtype=np.float64)


@dataclass(frozen=True)
class Question:
    """What the features need of the question: its key words, and which the documents lack.

    A question whose words cannot be looked up counts as known (1): one in another language
    than English (the documents' words are English ones), or one without key words, asked in
    function words and common words only ("what is this about?", "why?"): a vague question, asked
    of documents that may well answer it, as the vague questions the model was fitted on. One
    without any word at all (punctuation, emoji) counts as unknown (0): nothing in it says the
    documents cover it, so its meaning alone (the cosines) must; counted as known, "???" was
    "answered" with a confidence above most real answers'."""

    words: tuple[str, ...]  # the key words
    missing: tuple[str, ...]  # those the documents lack
    known: float  # the share of the key words they hold (see above when there are none)
    passages: int = 1  # how many passages the documents hold


def question_of(text: str, generation: Generation, english: float) -> Question:
    """The question's key words and which of them the generation lacks (`english`: the
    probability that the question is English, `qa.embed.weights.english`)."""
    keys = missing.key_words(text) if english >= missing.ENGLISH else []
    if not keys:
        return Question((), (), 1.0 if words(text) else 0.0, generation.size)
    lacking = tuple(missing.missing_terms(text, generation.vocabulary(), english))
    return Question(tuple(keys), lacking, 1.0 - len(lacking) / len(keys), generation.size)


def scores(passages: Passages, i: int, query: np.ndarray) -> tuple[float, float]:
    """Passage i's cosine with the question and its best sentence's (the cosine again for a
    passage stored without sentence vectors)."""
    own = float(passages.vectors[i] @ query)
    sentences = passages.sentence_vectors[passages.sentence_rows(i)] @ query
    return own, float(sentences.max()) if len(sentences) else own


def evidence(passages: Passages, i: int, query: np.ndarray, question: Question,
             null: np.ndarray | None) -> Evidence:  # fmt: skip
    """The features of passage i of `passages`: its cosines with the question less its cosines
    with the probes' mean (`null`, joined like a question with the question's weights; None
    for an older build, which recorded none)."""
    centred = query if null is None else query - null
    own, best_sentence = scores(passages, i, centred)
    return Evidence(
        cosine=own,
        sentence=best_sentence,
        known=question.known,
        terms=math.log1p(len(question.words)),
        size=math.log10(1 + question.passages),
    )


@dataclass(frozen=True)
class Model:
    """A fitted logistic model: standardised features, coefficients, decision threshold."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float = 0.5

    def probability(self, features: Evidence | np.ndarray) -> float:
        x = features.vector() if isinstance(features, Evidence) else np.asarray(features, float)
        z = float(((x - self.mean) / self.scale) @ self.coef + self.intercept)
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def to_dict(self) -> dict:
        return {"features": list(self.features), "mean": self.mean.tolist(),
                "scale": self.scale.tolist(), "coef": self.coef.tolist(),
                "intercept": self.intercept, "threshold": self.threshold}

    @classmethod
    def from_dict(cls, d: dict) -> Model:
        if d.get("features") != list(FEATURES):
            raise ValueError("the answered model was fitted on other features")
        return cls(FEATURES, np.array(d["mean"], float), np.array(d["scale"], float),
                   np.array(d["coef"], float), float(d["intercept"]), float(d["threshold"]))


@lru_cache(maxsize=1)
def model() -> Model:
    """The shipped answer model (`answered_model.json`)."""
    return Model.from_dict(json.loads(MODEL_FILE.read_text(encoding="utf-8"))["model"])


def threshold() -> float:
    """The confidence from which the documents cover a question (and a passage answers it)."""
    return model().threshold


def confidences(passages: Passages, query: np.ndarray, question: Question,
                null: np.ndarray | None) -> tuple[float, list[float]]:  # fmt: skip
    """The answer's confidence and each passage's (in rank order; none above the answer's).

    Args:
        passages: the ranked passages.
        query: the question's vector.
        question: its key words (`question_of`).
        null: the probes' mean vector, joined like the question (see `evidence`).
    """
    if not len(passages):
        return 0.0, []
    ceiling = float(np.nextafter(GOOD, 0.0)) if question.missing else 1.0
    own = [min(model().probability(evidence(passages, i, query, question, null)), ceiling)
           for i in range(len(passages))]  # (plain floats: they go into JSON as they are)
    answer = max(own)  # (the first passage's, unless a reranker or the lexical mode put
    return answer, [min(p, answer) for p in own]  # a weaker one first)


def is_answered(confidence: float) -> bool:
    """The decision: the documents cover the question."""
    return bool(confidence >= threshold())
