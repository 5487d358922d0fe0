"""Fusion of dense and lexical scores into one ranking.

The chosen method (see README, "Retrieval quality", for the measurements behind it) takes the
dense cosine of the passage, blended with the cosine of its best sentence, and adds a bounded
lexical bonus: the passage's BM25 score divided by the best BM25 score any passage gets for the
question, times a weight. Cosine has a fixed scale, so
no normalisation over a candidate list is needed, and the bonus never exceeds the weight - which
makes the result stable on a 12-passage report and a 16,000-passage collection alike.
Weighted reciprocal-rank fusion is kept for comparison (benchmarks/fusion.py).
"""

from __future__ import annotations

import numpy as np

MODES = ("dense", "lexical", "hybrid")
DEFAULT_MODE = "hybrid"  # measured best on both benchmark sets (README, "Retrieval quality")
LEXICAL_WEIGHT = 0.2
SENTENCE_WEIGHT = 1.0
RRF_K = 60


def score_fusion(
    dense: np.ndarray,
    lexical: np.ndarray,
    lexical_max: float,
    best_sentence: np.ndarray | None = None,
    weight: float = LEXICAL_WEIGHT,
    sentence_weight: float = SENTENCE_WEIGHT,
) -> np.ndarray:
    """Fused scores of candidate passages.

    `(cosine + sentence_weight * best_sentence_cosine) / (1 + sentence_weight)`, a cosine-scaled
    dense score, plus `weight * lexical / lexical_max`, a lexical bonus of at most `weight`.

    Args:
        dense: cosine similarity of question and each candidate passage.
        lexical: BM25 score of the same candidates.
        lexical_max: the best BM25 score over the whole collection for this question
            (0: nothing matched, no bonus).
        best_sentence: the best cosine of any sentence of each candidate (None: not used).
        weight: the largest bonus lexical evidence can add.
        sentence_weight: weight of the best sentence relative to the whole passage.
    """
    fused = np.asarray(dense, dtype=np.float32).copy()
    if best_sentence is not None:
        fused = (fused + np.float32(sentence_weight) * np.asarray(best_sentence, np.float32)) / (
            np.float32(1 + sentence_weight)
        )
    if lexical_max > 0:
        bonus = np.asarray(lexical, dtype=np.float32) / np.float32(lexical_max)
        fused += np.float32(weight) * bonus
    return fused


def rrf(
    rankings: list[np.ndarray], weights: list[float] | None = None, k: int = RRF_K
) -> dict[int, float]:
    """Weighted reciprocal-rank fusion: sum of weight / (k + rank) over the rankings.

    Args:
        rankings: each an array of item ids, best first.
        weights: one per ranking (default 1 each).
        k: the RRF constant.

    Returns:
        item id -> fused score.
    """
    weights = weights or [1.0] * len(rankings)
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            fused[int(item)] = fused.get(int(item), 0.0) + weight / (k + rank)
    return fused
