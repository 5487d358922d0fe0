"""Loaded models, once per process and backend, shared by every Embedder (thread-safe)."""

from __future__ import annotations

import threading

from qa import config

_MODELS: dict[tuple[str, str], object] = {}
_MODELS_LOCK = threading.Lock()
LOADS = {"count": 0}  # models loaded from disk in this process (tests check batch mode loads once)


def vector_id(model_id: str, backend: str) -> str:
    """The vector space of a model run by a backend: the model, plus the backend when it
    changes the vectors. torch and onnx compute the same float32 vectors (to about 1e-7, checked
    by the tests and the benchmark), so they share reusable vectors; int8 ones are kept apart."""
    return model_id if backend in ("torch", "onnx") else f"{model_id}|{backend}"


def load_model(path: str, backend: str = "torch", model_id: str | None = None):
    """Load a model once per process and backend, and share it.

    Returns a SentenceTransformer for "torch", else a `qa.embed.onnx.OnnxModel` (exported from
    the local model on first use; see that module for where the export is cached).
    """
    key = (path, backend)
    with _MODELS_LOCK:
        if key not in _MODELS:
            config.ensure_offline()
            if backend == "torch":
                from qa.embed import torch_model

                _MODELS[key] = torch_model.load(path)
            else:
                from qa.embed import onnx

                _MODELS[key] = onnx.load(model_id or path, path, backend, config.threads())
            LOADS["count"] += 1
        return _MODELS[key]
