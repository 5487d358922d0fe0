"""How the hybrid ranking scores a candidate passage: its cosine, blended with its best sentence's.

With the pair of models (`qa.embed.embedder`), a passage's score is
`(cosine + SENTENCE_WEIGHT * best_sentence) / (1 + SENTENCE_WEIGHT)`: both on the cosine's own
scale, so nothing is normalised over a candidate list and a 12-passage report and a
16,000-passage collection are scored alike. The lexical (BM25) search still brings its own
candidates into the pool, but adds no bonus: on the pair, a bonus of any size lowered the
locked half of the reader questions and the questions in other languages (docs/retrieval.md;
`benchmarks/fusion.py` measures each signal).
"""

from __future__ import annotations

import numpy as np

MODES = ("dense", "lexical", "hybrid")
DEFAULT_MODE = "hybrid"  # measured best on both benchmark sets (docs/retrieval.md)
SENTENCE_WEIGHT = 0.25  # chosen on the tuning half and medquad-small (benchmarks/fusion.py)


def score_fusion(dense: np.ndarray, best_sentence: np.ndarray | None = None,
                 sentence_weight: float = SENTENCE_WEIGHT) -> np.ndarray:  # fmt: skip
    """Hybrid scores of candidate passages.

    Args:
        dense: cosine similarity of question and each candidate passage.
        best_sentence: the best cosine of any sentence of each candidate, ordered by aspect
            within heading groups (`qa.retrieve.aspect`); None: not used.
        sentence_weight: weight of the best sentence relative to the whole passage.
    """
    fused = np.asarray(dense, dtype=np.float32)
    if best_sentence is None:
        return fused.copy()
    weight = np.float32(sentence_weight)
    return (fused + weight * np.asarray(best_sentence, np.float32)) / (np.float32(1) + weight)
