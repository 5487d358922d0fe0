"""A learned query adapter: one linear map applied to a question's vector before it is compared
with passages, so that a question lands nearer the passages that answer it.

Questions and answers are phrased differently ("What are the symptoms of X?" against "Signs
include..."); a 384x384 map trained on MedQuAD question/answer pairs moves questions toward their
answers' region of the space. `benchmarks/train_adapter.py` fits it (seeded) on the MedQuAD
documents that medquad-small does not hold, with the other answers about the same disease as hard
negatives (what a question about one aspect of a topic must not match: the passages beside its
answer), and blends it half and half with the identity (`BLEND`): the full map helped MedQuAD
most but cost the report's older questions more (docs/retrieval.md).

The map belongs to one model: it applies only to the vectors of the model it was trained for
(`query_adapter.json` names it: all-MiniLM-L6-v2, alone or in the pair, where it maps MiniLM's
part of the question), and is the identity otherwise. On the pair it lifts medquad-small's
nDCG@10 by 0.035 and leaves the reader questions as they are (docs/retrieval.md).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

MAP_FILE = Path(__file__).with_name("query_adapter.npy")
META_FILE = Path(__file__).with_name("query_adapter.json")


@lru_cache(maxsize=1)
def _shipped() -> tuple[str, np.ndarray] | None:
    """(model id, map) as shipped, or None when there is none."""
    if not (MAP_FILE.is_file() and META_FILE.is_file()):
        return None
    meta = json.loads(META_FILE.read_text(encoding="utf-8"))
    matrix = np.load(MAP_FILE, allow_pickle=False).astype(np.float32)
    return meta["model"], matrix


def adapt(query: np.ndarray, model_id: str) -> np.ndarray:
    """A question vector (dim,), or several (n, dim), as the ranking compares them: mapped and
    normalised when the map was trained for `model_id`, else unchanged."""
    shipped = _shipped()
    if shipped is None or shipped[0] != model_id or shipped[1].shape[1] != query.shape[-1]:
        return query
    mapped = query @ shipped[1].T
    norms = np.linalg.norm(mapped, axis=-1, keepdims=True)
    return np.where(norms > 0, mapped / np.maximum(norms, 1e-12), query).astype(np.float32)
