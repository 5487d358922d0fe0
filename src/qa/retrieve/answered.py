"""Is the question covered? A calibrated probability from the evidence a ranking gathered.

One logistic model over a few generic features of a passage and the question:

    cosine     the passage's cosine with the question, above the corpus's null level
    sentence   the best cosine of one of its sentences with the question, above the null level
    known      the share of the question's content words found anywhere in the corpus
    terms      log(1 + number of content words): a question with few topic words is vaguer

The null level is what a question about nothing in the corpus still scores: a build asks the
questions of `probes.txt` (cooking, travel, programming...) and records the mean of their best
cosines in the manifest. It grows with the corpus (the best of 40,000 passages is higher than the
best of 12 for any question), so reading cosines above it lets one model serve a 12-passage
report and a 40,000-passage collection alike.

The answer's confidence is the probability of its first passage, with `cosine` the best cosine
of any allowed passage. Each further hit's confidence is the answer's times the probability that
it answers too, given how far its cosine and best sentence fall below the first passage's (a
second logistic model, `HIT_FEATURES`): never above the answer's, and lower the further a hit
falls behind. The documents cover the question when the answer's confidence reaches the model's
threshold, and the page's relevance labels read the same numbers, so they cannot contradict the
decision.

The coefficients and the threshold (`answered_model.json`) are fitted by
`benchmarks/train_answered.py` on labelled questions (the tuning half of the report's reader
questions, the older report questions, off-topic questions, MedQuAD questions against their own
collection and against the report), never on the locked half. The threshold keeps answerable
questions wrongly flagged at or under 2% of the report questions used (the target is at most
one in a set of ~50, and a reader wrongly told "not covered" is the worst failure) - see the
README, "Retrieval quality".
"""

from __future__ import annotations

import json
import math
from dataclasses import astuple, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from qa.ingest.terms import content_terms, words
from qa.store.base import Generation, Passages

MODEL_FILE = Path(__file__).with_name("answered_model.json")
PROBES_FILE = Path(__file__).with_name("probes.txt")
FEATURES = ("cosine", "sentence", "known", "terms")
HIT_FEATURES = ("cosine_gap", "sentence_gap")  # a further hit's, below the first passage's
NULL_VERSION = 2  # of the probes and the record; a manifest recording another is not read
_PROBE_VECTORS: dict[str, np.ndarray] = {}  # vector space -> the probes' vectors


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
            _PROBE_VECTORS[embedder.vector_id] = embedder.member_questions(probes())
        self.queries = _PROBE_VECTORS[embedder.vector_id]  # one (probes, dim_i) per model
        bounds = np.cumsum([0, *(q.shape[1] for q in self.queries)])
        self.slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
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
    """What the features need of the question: its content words and which the corpus knows.

    (Each word counts alike: weighting by idf made the corpus's own common words count for
    nothing on a 12-passage report, and measured worse.)

    A question without content words has no share to take. One of function words only ("what
    is this about?", "why?") counts as known (1): a vague question, asked of documents that may
    well answer it, as the vague questions the model was fitted on. One without any word the
    search can read (punctuation, emoji, a script other than Latin's) counts as unknown (0):
    nothing in it says the documents cover it, so its meaning alone (the cosines) must; counted
    as known, "???" was "answered" with a confidence above most real answers'."""

    words: tuple[str, ...]
    known: float  # share of the words found in the corpus (see above when there are none)

    @classmethod
    def of(cls, words: list[str], frequencies: np.ndarray, readable: bool = True) -> Question:
        """`frequencies`: in how many of the generation's passages each word occurs;
        `readable`: whether the question has any word at all (`qa.ingest.terms.words`)."""
        if not len(words):
            return cls((), 1.0 if readable else 0.0)
        return cls(tuple(words), float((np.asarray(frequencies) > 0).mean()))


def question_of(text: str, generation: Generation) -> Question:
    """The question's content words and which of them the generation holds."""
    terms = content_terms(text)
    return Question.of(terms, generation.term_frequencies(terms),
                       readable=bool(terms or words(text)))  # fmt: skip


def scores(passages: Passages, i: int, query: np.ndarray) -> tuple[float, float]:
    """Passage i's cosine with the question and its best sentence's (the cosine again for a
    passage stored without sentence vectors)."""
    own = float(passages.vectors[i] @ query)
    sentences = passages.sentence_vectors[passages.sentence_rows(i)] @ query
    return own, float(sentences.max()) if len(sentences) else own


def evidence(passages: Passages, i: int, query: np.ndarray, question: Question,
             null: tuple[float, float], cosine: float | None = None) -> Evidence:  # fmt: skip
    """The features of passage i of `passages` (`null`: the corpus's null levels, see
    `null_level`; `cosine`: use this instead of the passage's own)."""
    own, best_sentence = scores(passages, i, query)
    return Evidence(
        cosine=(own if cosine is None else cosine) - null[0],
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
    def from_dict(cls, d: dict, features: tuple[str, ...]) -> Model:
        if d.get("features") != list(features):
            raise ValueError("the answered model was fitted on other features")
        return cls(features, np.array(d["mean"], float), np.array(d["scale"], float),
                   np.array(d["coef"], float), float(d["intercept"]), float(d["threshold"]),
                   tuple(d.get("default_null", (0.0, 0.0))))


@lru_cache(maxsize=1)
def _models() -> tuple[Model, Model]:
    shipped = json.loads(MODEL_FILE.read_text(encoding="utf-8"))
    return (Model.from_dict(shipped["model"], FEATURES),
            Model.from_dict(shipped["hits"], HIT_FEATURES))  # fmt: skip


def model() -> Model:
    """The shipped answer model (`answered_model.json`)."""
    return _models()[0]


def hit_model() -> Model:
    """The shipped model of whether a further hit answers too (`answered_model.json`)."""
    return _models()[1]


def gaps(passages: Passages, query: np.ndarray) -> list[np.ndarray]:
    """For each passage after the first, how far its cosine and best sentence fall below the
    first passage's."""
    first = np.array(scores(passages, 0, query))
    return [np.array(scores(passages, i, query)) - first for i in range(1, len(passages))]


def confidences(passages: Passages, query: np.ndarray, question: Question, best_cosine: float,
                manifest: dict, weights: np.ndarray | None = None
                ) -> tuple[float, list[float]]:  # fmt: skip
    """The answer's confidence and each passage's (in rank order; none above the answer's).

    Args:
        passages: the ranked passages.
        query: the question's vector.
        question: its content words (`Question.of`).
        best_cosine: the best cosine of any allowed passage (the first passage's `cosine`).
        manifest: the generation's manifest (its null levels).
        weights: each model's weight for the question (None: one model).
    """
    if not len(passages):
        return 0.0, []
    answer = model().probability(evidence(passages, 0, query, question,
                                          null_level(manifest, weights), best_cosine))
    further = hit_model()
    hits = [answer] + [answer * further.probability(gap) for gap in gaps(passages, query)]
    return answer, hits


def is_answered(confidence: float) -> bool:
    """The decision: the documents cover the question."""
    return confidence >= model().threshold
