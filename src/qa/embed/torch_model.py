"""The torch backend: the model run by sentence-transformers itself.

`load` reads a model folder (or hub name); `encode_tokens` and `encode_spans` give what the
ONNX backend's `OnnxModel` methods of the same names give, from a `SentenceTransformer`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from qa import config
from qa.embed.pooling import normalized, pool_spans


def load(path: str):
    """A SentenceTransformer on the CPU, with the configured build threads."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    config.ensure_offline()
    torch.set_num_threads(config.threads())
    hf_logging.disable_progress_bar()  # no "Loading weights" bar on every start
    return SentenceTransformer(path, device="cpu")


@contextmanager
def one_thread(question: bool) -> Iterator[None]:
    """Run a question on one torch thread (measured far faster on a busy machine; see
    docs/performance.md); the ONNX model picks its one-thread session itself. Does nothing when
    `question` is False."""
    if not question:
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def has_offsets(model) -> bool:
    """Whether the model's tokenizer gives character offsets (a "fast" tokenizer)."""
    return bool(getattr(model.tokenizer, "is_fast", False))


def encode_tokens(model, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A text's normalised vector (1, dim), its token outputs and their character offsets."""
    (out,) = model.encode([text], output_value=None)
    offsets = model.tokenizer(
        text, return_offsets_mapping=True, truncation=True, max_length=model.max_seq_length,
        verbose=False,
    )["offset_mapping"]  # fmt: skip
    vector = normalized(out["sentence_embedding"].float().numpy()[None, :])
    return vector, out["token_embeddings"][: len(offsets)].float().numpy(), np.asarray(offsets)


def encode_spans(
    model, texts: list[str], spans: list[list[tuple[int, int]]], batch_size: int, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of texts (normalised) and span means of their token outputs (not normalised)."""
    step = batch_size * 8  # token outputs of a slice at a time (bounded memory)
    vectors, span_vectors = [], []
    starts = range(0, len(texts), step)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="Batches", unit="slice")
    for start in starts:
        part = texts[start : start + step]
        offsets = model.tokenizer(
            part, return_offsets_mapping=True, truncation=True,
            max_length=model.max_seq_length, verbose=False,
        )["offset_mapping"]  # fmt: skip
        outputs = model.encode(part, batch_size=batch_size, output_value=None)
        for out, offs, text_spans in zip(outputs, offsets, spans[start : start + step],
                                         strict=True):
            hidden = out["token_embeddings"][: len(offs)].float().numpy()
            span_vectors.append(pool_spans(hidden, np.asarray(offs), text_spans))
            vectors.append(out["sentence_embedding"].float().numpy())
    return normalized(np.vstack(vectors)), np.vstack(span_vectors)
