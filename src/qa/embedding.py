"""Embeddings: a sentence-transformers model, the packaged offline copy by default.

Three backends run the same model: "torch" (sentence-transformers itself), "onnx" (the model
exported to ONNX, run by onnxruntime: same vectors, no torch at query time) and "onnx-int8"
(the export with int8 matrix products). The model is loaded on first use, so commands that
never embed (`qa info`, `qa --help`) never import torch.

Thread count and batch size were chosen by `benchmarks/run.py` on the 2-core machine
(see the README's Performance section).
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

BACKENDS = ("torch", "onnx", "onnx-int8")
DEFAULT_BACKEND = "onnx"  # measured >= 1.5x faster than torch here, same vectors (README)
DEFAULT_BATCH_SIZE = 8  # measured: 8 beat 16 and 32 for both backends on 2 cores (README)

_MODELS: dict[tuple[str, str], object] = {}
_MODELS_LOCK = threading.Lock()
LOADS = {"count": 0}  # models loaded from disk in this process (tests check batch mode loads once)


def vector_id(model_id: str, backend: str) -> str:
    """The vector space of a model run by a backend: the model, plus the backend when it
    changes the vectors. torch and onnx compute the same float32 vectors (to about 1e-7, checked
    by the tests and the benchmark), so they share reusable vectors; int8 ones are kept apart."""
    return model_id if backend in ("torch", "onnx") else f"{model_id}|{backend}"


def load_model(path: str, backend: str = "torch", model_id: str | None = None):
    """Load a model once per process and backend, and share it (safe for concurrent use).

    Returns a SentenceTransformer for "torch", else a `qa.onnx_model.OnnxModel` (exported from
    the local model on first use; see that module for where the export is cached).
    """
    key = (path, backend)
    with _MODELS_LOCK:
        if key not in _MODELS:
            config.ensure_offline()
            if backend == "torch":
                _MODELS[key] = _load_torch(path)
            else:
                from qa.onnx_model import OnnxModel, ensure_export

                _MODELS_LOCK.release()  # the export loads the torch model through this function
                try:
                    onnx_file = ensure_export(model_id or path, path, backend)
                finally:
                    _MODELS_LOCK.acquire()
                _MODELS[key] = OnnxModel(onnx_file, threads=config.threads())
            LOADS["count"] += 1
        return _MODELS[key]


def _load_torch(path: str):
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(config.threads())
    hf_logging.disable_progress_bar()  # no "Loading weights" bar on every start
    return SentenceTransformer(path, device="cpu")


class Embedder:
    """Turns texts into normalised float32 vectors.

    Args:
        model: model name, hub id or local path; None means $QA_MODEL or the packaged model.
        batch_size: texts per forward pass when encoding many.
        backend: "torch", "onnx" or "onnx-int8"; None means $QA_BACKEND, else the default.
    """

    def __init__(
        self,
        model: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        backend: str | None = None,
    ) -> None:
        self.name = config.model_name(model)
        self.model_id, self._load_path = config.resolve_model(self.name)
        self.batch_size = batch_size
        self.backend = config.backend(backend)

    @property
    def vector_id(self) -> str:
        """What identifies the vector space: the model, plus the backend when it changes vectors.

        torch and onnx compute the same float32 vectors (the benchmark checks it), so they share
        cached vectors; int8 vectors differ slightly and are kept apart.
        """
        if self.backend in ("torch", "onnx"):
            return self.model_id
        return f"{self.model_id}|{self.backend}"

    @cached_property
    def model(self):
        """The loaded model, once per process (offline unless the user allowed the network)."""
        try:
            return load_model(self._load_path, self.backend, self.model_id)
        except QAError:
            raise
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
        model = self.model
        one = len(texts) == 1 and self.backend == "torch"
        if one:  # a question: one thread (measured far faster on a busy machine; see README)
            import torch

            threads = torch.get_num_threads()
            torch.set_num_threads(1)
        try:
            vectors = model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=progress,
            )
        finally:
            if one:
                torch.set_num_threads(threads)
        return np.ascontiguousarray(vectors, dtype=np.float32)
