"""Is the question covered? One calibrated number, `confidence`, and the decision read from it.

One logistic model over a few generic features of a passage and the question:

    cosine     the passage's cosine with the question (the pair's weighted mean), above the
               corpus's null level
    sentence   the best cosine of one of its sentences with the question, above the null level
    known      the share of the question's key words the documents hold (`qa.retrieve.missing`;
               1 for a question whose words cannot be looked up: not English, or no key word)
    terms      log(1 + number of key words): a question with few topic words is vaguer

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
held under `STRONG`: it is never a strong match.

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
FEATURES = ("cosine", "sentence", "known", "terms")
NULL_VERSION = 2  # of the probes and the record; a manifest recording another is not read
_PROBE_VECTORS: dict[str, list[np.ndarray]] = {}  # vector space -> the probes' vectors per model
STRONG = 0.75  # the band of a strong match starts here; a question lacking key words stays below
GOOD = 0.5  # the band of a good match starts here: from here up a passage's best sentences are
# highlighted (a weak match's are not: nothing is marked that does not answer)
BANDS = ((STRONG, "strong match"), (GOOD, "good match"))  # above the threshold: "weak match"


def probes() -> list[str]:
    """The questions about nothing (`probes.txt`)."""
    lines = PROBES_FILE.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


class NullLevel:
    """The best cosines of the probe questions over a corpus, per model, gathered batch by batch
    while a build writes it (no second pass over the vectors).

    Args:
        embedder: the build's models (encodes the probes once; `Embedder.member_questions`).
    """

    def __init__(self, embedder) -> None:
        if embedder.vector_id not in _PROBE_VECTORS:  # once per process and vector space
            _PROBE_VECTORS[embedder.vector_id] = [  # as the ranking reads questions
                adapter.adapt(q, model) for q, model in zip(
                    embedder.member_questions(probes()), model_ids(embedder.model_id),
                    strict=True)]
        self.queries = _PROBE_VECTORS[embedder.vector_id]  # one (probes, dim_i) per model
        bounds = np.cumsum([0, *(q.shape[1] for q in self.queries)])
        self.slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        self.scale = np.float32(np.sqrt(len(self.queries)))  # joined vectors are 1/sqrt(M)
        shape = (len(self.queries), len(self.queries[0]))
        self.cosine = np.full(shape, -1.0, dtype=np.float32)
        self.sentence = np.full(shape, -1.0, dtype=np.float32)

    def _best(self, vectors: np.ndarray) -> np.ndarray:
        return np.stack([(q @ vectors[:, s].T).max(axis=1) * self.scale
                         for q, s in zip(self.queries, self.slices, strict=True)])

    def update(self, vectors: np.ndarray, sentence_vectors: np.ndarray) -> None:
        """Take a batch of passage vectors and their sentence vectors into account."""
        if len(vectors):
            self.cosine = np.maximum(self.cosine, self._best(vectors))
        if len(sentence_vectors):
            self.sentence = np.maximum(self.sentence, self._best(sentence_vectors))

    def to_dict(self) -> dict:
        """What the manifest records ("answered"): each model's mean over the probes."""
        return {"version": NULL_VERSION, "probes": int(self.cosine.shape[1]),
                "cosine": [round(float(v), 6) for v in self.cosine.mean(axis=1)],
                "sentence": [round(float(v), 6) for v in self.sentence.mean(axis=1)]}


def null_level(manifest: dict, weights: np.ndarray | None = None) -> tuple[float, float]:
    """(cosine, sentence) null levels recorded by the build for a question with these model
    weights (None: the first model alone), else the model's defaults."""
    recorded = manifest.get("answered")
    if isinstance(recorded, dict) and recorded.get("version") == NULL_VERSION:
        try:
            cosine = np.asarray(recorded["cosine"], dtype=np.float64)
            sentence = np.asarray(recorded["sentence"], dtype=np.float64)
            w = np.ones(1) if weights is None else np.asarray(weights, dtype=np.float64)
            if cosine.shape == sentence.shape == w.shape:
                return float(cosine @ w), float(sentence @ w)
        except (KeyError, TypeError, ValueError):
            pass
    return model().default_null


@dataclass(frozen=True)
class Evidence:
    """The features of one passage for one question (see the module text)."""

    cosine: float
    sentence: float
    known: float
    terms: float

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


def question_of(text: str, generation: Generation, english: float) -> Question:
    """The question's key words and which of them the generation lacks (`english`: the
    probability that the question is English, `qa.embed.weights.english`)."""
    keys = missing.key_words(text) if english >= missing.ENGLISH else []
    if not keys:
        return Question((), (), 1.0 if words(text) else 0.0)
    lacking = tuple(missing.missing_terms(text, generation.vocabulary(), english))
    return Question(tuple(keys), lacking, 1.0 - len(lacking) / len(keys))


def scores(passages: Passages, i: int, query: np.ndarray) -> tuple[float, float]:
    """Passage i's cosine with the question and its best sentence's (the cosine again for a
    passage stored without sentence vectors)."""
    own = float(passages.vectors[i] @ query)
    sentences = passages.sentence_vectors[passages.sentence_rows(i)] @ query
    return own, float(sentences.max()) if len(sentences) else own


def evidence(passages: Passages, i: int, query: np.ndarray, question: Question,
             null: tuple[float, float]) -> Evidence:  # fmt: skip
    """The features of passage i of `passages` (`null`: the corpus's null levels for the
    question, see `null_level`)."""
    own, best_sentence = scores(passages, i, query)
    return Evidence(
        cosine=own - null[0],
        sentence=best_sentence - null[1],
        known=question.known,
        terms=math.log1p(len(question.words)),
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
    default_null: tuple[float, float] = (0.0, 0.0)  # for builds that recorded none

    def probability(self, features: Evidence | np.ndarray) -> float:
        x = features.vector() if isinstance(features, Evidence) else np.asarray(features, float)
        z = float(((x - self.mean) / self.scale) @ self.coef + self.intercept)
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def to_dict(self) -> dict:
        return {"features": list(self.features), "mean": self.mean.tolist(),
                "scale": self.scale.tolist(), "coef": self.coef.tolist(),
                "intercept": self.intercept, "threshold": self.threshold,
                "default_null": list(self.default_null)}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> Model:
        if d.get("features") != list(FEATURES):
            raise ValueError("the answered model was fitted on other features")
        return cls(FEATURES, np.array(d["mean"], float), np.array(d["scale"], float),
                   np.array(d["coef"], float), float(d["intercept"]), float(d["threshold"]),
                   tuple(d.get("default_null", (0.0, 0.0))))


@lru_cache(maxsize=1)
def model() -> Model:
    """The shipped answer model (`answered_model.json`)."""
    return Model.from_dict(json.loads(MODEL_FILE.read_text(encoding="utf-8"))["model"])


def threshold() -> float:
    """The confidence from which the documents cover a question (and a passage answers it)."""
    return model().threshold


def confidences(passages: Passages, query: np.ndarray, question: Question, manifest: dict,
                weights: np.ndarray | None = None) -> tuple[float, list[float]]:  # fmt: skip
    """The answer's confidence and each passage's (in rank order; none above the answer's).

    Args:
        passages: the ranked passages.
        query: the question's vector.
        question: its key words (`question_of`).
        manifest: the generation's manifest (its null levels).
        weights: each model's weight for the question (None: one model).
    """
    if not len(passages):
        return 0.0, []
    null = null_level(manifest, weights)
    ceiling = float(np.nextafter(STRONG, 0.0)) if question.missing else 1.0
    own = [min(model().probability(evidence(passages, i, query, question, null)), ceiling)
           for i in range(len(passages))]  # (plain floats: they go into JSON as they are)
    answer = max(own)  # (the first passage's, unless a reranker or the lexical mode put
    return answer, [min(p, answer) for p in own]  # a weaker one first)


def is_answered(confidence: float) -> bool:
    """The decision: the documents cover the question."""
    return bool(confidence >= threshold())
