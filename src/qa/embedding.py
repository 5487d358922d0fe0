"""Embeddings: a sentence-transformers model, the packaged offline copy by default.

The model is loaded on first use, so commands that never embed (`qa info`, `qa --help`)
never import torch.
"""

from __future__ import annotations

import logging
import os
import threading
from functools import cached_property

import numpy as np

from qa import config
from qa.errors import QAError

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 32

_MODELS: dict[str, object] = {}
_MODELS_LOCK = threading.Lock()
LOADS = {"count": 0}  # models loaded from disk in this process (tests check batch mode loads once)


def load_model(path: str):
    """Load a SentenceTransformer once per process and share it (it is safe for concurrent use)."""
    with _MODELS_LOCK:
        if path not in _MODELS:
            config.ensure_offline()
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # no "Loading weights" bar on every start
            _MODELS[path] = SentenceTransformer(path, device="cpu")
            LOADS["count"] += 1
        return _MODELS[path]


class Embedder:
    """Turns texts into normalised float32 vectors.

    Args:
        model: model name, hub id or local path; None means $QA_MODEL or the packaged model.
        batch_size: texts per forward pass when encoding many.
    """

    def __init__(self, model: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.name = config.model_name(model)
        self.model_id, self._load_path = config.resolve_model(self.name)
        self.batch_size = batch_size

    @cached_property
    def model(self):
        """The SentenceTransformer, loaded once (offline unless the user allowed the network)."""
        try:
            return load_model(self._load_path)
        except Exception as exc:  # noqa: BLE001 - any failure here is a configuration problem
            log.debug("model load failed", exc_info=True)
            offline = os.environ.get("HF_HUB_OFFLINE") == "1"
            raise QAError(
                f"cannot load embedding model {self.name!r}: {str(exc).splitlines()[0][:200]}",
                "give a local model folder with --model/QA_MODEL"
                + (", or set HF_HUB_OFFLINE=0 to allow downloads" if offline else ""),
            ) from None

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self.model.get_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        """Word pieces the model reads, special tokens excluded."""
        return int(self.model.max_seq_length) - 2

    def count_tokens(self, text: str) -> int:
        """Word pieces of `text` under the model's own tokenizer (no special tokens)."""
        return len(self.model.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def truncate(self, text: str, max_tokens: int | None = None) -> tuple[str, bool]:
        """Cut `text` to the model window; returns (text, whether it was cut)."""
        limit = max_tokens or self.max_tokens
        ids = self.model.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        if len(ids) <= limit:
            return text, False
        return self.model.tokenizer.decode(ids[:limit]), True

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Normalised embeddings of `texts`, shape (len(texts), dim), float32."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)
