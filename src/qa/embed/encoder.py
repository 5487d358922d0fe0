"""One embedding model: a sentence-transformers model run by one of three backends.

`qa.embed.embedder.Embedder` combines one or two of these (the default is a pair: see there).
Three backends run the same model: "torch" (sentence-transformers itself), "onnx" (the model
exported to ONNX, run by onnxruntime: same vectors, no torch at query time) and "onnx-int8"
(the export with int8 matrix products). The model is loaded on first use, so commands that
never embed (`qa info`, `qa --help`) never import torch.

Thread count and batch size were chosen by `benchmarks/run.py` on the 2-core machine
(see docs/performance.md).
"""

from __future__ import annotations

import logging
import os
from functools import cached_property

import numpy as np

from qa import config
from qa.embed import torch_model
from qa.embed.models import ModelSpec, load_model, vector_id
from qa.embed.pooling import normalized
from qa.errors import QAError

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 8  # 8 beat 16 and 32 for both backends on 2 cores (docs/performance.md)


class Encoder:
    """Turns texts into normalised float32 vectors with one model.

    Args:
        spec: the model (`qa.embed.models.resolve`): its id, what to load, its prefixes.
        backend: "torch", "onnx" or "onnx-int8" (checked by the caller).
        batch_size: texts per forward pass when encoding many.
    """

    def __init__(self, spec: ModelSpec, backend: str,
                 batch_size: int = DEFAULT_BATCH_SIZE) -> None:  # fmt: skip
        self.spec = spec
        self.name = spec.name
        self.model_id = spec.id
        self.batch_size = batch_size
        self.backend = backend

    @property
    def vector_id(self) -> str:
        """What identifies the vector space (`qa.embed.models.vector_id`)."""
        return vector_id(self.model_id, self.backend)

    @cached_property
    def model(self):
        """The loaded model, once per process (offline unless the user allowed the network)."""
        if config.missing_folder(self.name):
            raise QAError(f"no model folder at {self.name}",
                          "give an existing local model folder with --model/QA_MODEL")  # fmt: skip
        try:
            return load_model(self.spec.load_path(), self.backend, self.model_id)
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
        if len(text.encode("utf-8")) < limit:  # (no tokenizer makes more pieces than bytes,
            return text, False  # bar a word-start marker: a short text is not tokenized twice)
        ids = self.model.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        if len(ids) <= limit:
            return text, False
        return self.model.tokenizer.decode(ids[:limit]), True

    def encode(self, texts: list[str], progress: bool = False, question: bool = False
               ) -> np.ndarray:  # fmt: skip
        """Normalised embeddings of `texts`, shape (len(texts), dim), float32: passages, or
        questions (`question`), each with the model's prefix for its kind, if it has one."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        prefix = self.spec.query_prefix if question else self.spec.passage_prefix
        texts = [prefix + t for t in texts] if prefix else texts
        with torch_model.one_thread(len(texts) == 1 and self.backend == "torch"):
            vectors = self.model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=progress,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_query(self, text: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """A question's vector, exactly as `encode([text])` gives it, with the model's token
        outputs of the same pass and their character offsets in `text`.

        Returns:
            (vector of shape (1, dim); token outputs (tokens, dim); offsets (tokens, 2)), the
            last two None when the tokenizer cannot give character offsets.
        """
        prefix = self.spec.query_prefix
        if self.backend != "torch":
            vector, hidden, offsets = self.model.encode_tokens(prefix + text)
        elif not torch_model.has_offsets(self.model):
            return self.encode([text], question=True), None, None
        else:
            with torch_model.one_thread(True):
                vector, hidden, offsets = torch_model.encode_tokens(self.model, prefix + text)
        return vector, hidden, offsets - len(prefix) if prefix else offsets

    def encode_spans(
        self, texts: list[str], spans: list[list[tuple[int, int]]], progress: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of `texts` and of character spans inside them, from one forward pass each.

        A span's vector is the normalised mean of the model's output for the tokens inside it,
        read in the context of its whole text ("late chunking"): the passage's own encode
        yields its sentences' vectors, so sentences cost no second pass through the model.
        A span with no token inside the model window is embedded on its own (as is every span
        for a model whose tokenizer cannot give character offsets).

        Args:
            texts: the texts to embed.
            spans: for each text, (start, end) character offsets into it.
            progress: show a progress bar.

        Returns:
            (text vectors, shape (len(texts), dim); span vectors, one row per span, in order).
        """
        if len(spans) != len(texts):
            raise ValueError("one list of spans per text")
        if self.spec.passage_prefix:  # the model reads "prefix + text": spans move with it
            shift = len(self.spec.passage_prefix)
            texts = [self.spec.passage_prefix + t for t in texts]
            spans = [[(s + shift, e + shift) for s, e in text_spans] for text_spans in spans]
        total = sum(len(s) for s in spans)
        if not texts:
            return (np.zeros((0, self.dim), np.float32), np.zeros((total, self.dim), np.float32))
        if self.backend == "torch" and not torch_model.has_offsets(self.model):
            # no character offsets from a slow tokenizer: every span is embedded on its own
            vectors = self.model.encode(texts, batch_size=self.batch_size,
                                        normalize_embeddings=True, convert_to_numpy=True)
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            span_vectors = np.zeros((total, self.dim), np.float32)
        elif self.backend == "torch":
            vectors, span_vectors = torch_model.encode_spans(
                self.model, texts, spans, self.batch_size, progress
            )
        else:
            vectors, span_vectors = self.model.encode_spans(
                texts, spans, batch_size=self.batch_size, show_progress_bar=progress
            )
        empty = np.flatnonzero(~span_vectors.any(axis=1))
        if len(empty):  # outside the window: embed those spans on their own
            flat = [texts[i][s:e] for i, text_spans in enumerate(spans) for s, e in text_spans]
            span_vectors[empty] = self.encode([flat[j] for j in empty])
        return vectors, normalized(span_vectors)
