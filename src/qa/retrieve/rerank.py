"""Optional reranking with a sentence-transformers `CrossEncoder` (off unless configured).

A cross-encoder reads the question and a passage together and scores the pair; it is slower
than comparing vectors, so it reorders only the first `DEPTH` passages of the chosen mode.
No cross-encoder ships offline with qa: configure a local model folder (or, with the network
allowed, a hub name) with `--reranker` or `QA_RERANKER`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import cached_property

import numpy as np

from qa import config
from qa.errors import QAError

log = logging.getLogger(__name__)

DEPTH = 20  # passages the cross-encoder reorders


def configured(value: str | None = None) -> str | None:
    """The reranker model to use: the argument, else $QA_RERANKER, else None (no reranking)."""
    return value or os.environ.get("QA_RERANKER") or None


class Reranker:
    """Scores (question, passage) pairs with a CrossEncoder.

    Args:
        model: local folder or hub name of a sentence-transformers CrossEncoder.
    """

    def __init__(self, model: str) -> None:
        self.name = model

    @cached_property
    def model(self):
        """The CrossEncoder, loaded on first use (offline unless the user allowed the network)."""
        config.ensure_offline()
        if config.missing_folder(self.name):
            raise QAError(f"no reranker folder at {self.name}",
                          "give an existing local CrossEncoder folder with --reranker/QA_RERANKER, "
                          "or drop it")  # fmt: skip
        try:
            from sentence_transformers import CrossEncoder

            return CrossEncoder(self.name, device="cpu")
        except Exception as exc:  # noqa: BLE001 - any failure here is a configuration problem
            log.debug("reranker load failed", exc_info=True)
            raise QAError(
                f"cannot load reranker {self.name!r}: {str(exc).splitlines()[0][:200]}",
                "give a local CrossEncoder folder with --reranker/QA_RERANKER, or drop it",
            ) from None

    def scores(self, question: str, passages: Sequence[str]) -> np.ndarray:
        """One score per passage (higher is better)."""
        if not passages:
            return np.zeros(0, dtype=np.float32)
        pairs = [(question, p) for p in passages]
        return np.asarray(self.model.predict(pairs, show_progress_bar=False), dtype=np.float32)

    def rerank(
        self, question: str, ids: np.ndarray, passages: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Reorder candidate ids by cross-encoder score: (ids, scores), best first."""
        scores = self.scores(question, passages)
        order = np.argsort(-scores, kind="stable")
        return np.asarray(ids)[order], scores[order]
