"""The work of a distributed build on one Ray worker: parse and chunk files, embed passages.

`BuildWorker` runs as a Ray actor, one per CPU of the cluster, on one thread each. It loads the
model once (again after Ray restarts it) from the configuration the driver gives it: the same
model name and backend, so its vectors are those of a build on one machine. It has no state
besides the model, so a call that Ray re-runs on a restarted worker gives the same result.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import numpy as np

from qa import __version__, config
from qa.build import Prepared, Vectors, document_entries, model_facts
from qa.embed.embedder import Embedder
from qa.errors import QAError
from qa.ingest.chunking import CHUNKER_VERSION, chunk_documents
from qa.ingest.loaders import LoadResult, parse_file, skip

THREADS = 1  # model threads per worker: one worker per CPU (measured best on a busy machine)


@dataclass(frozen=True)
class Outline:
    """What the driver needs at once of a group of parsed files (the passages stay in Ray's
    object store until their turn to be written).

    Attributes:
        documents: the manifest entry of each document (`build.document_entry`).
        skipped: (path, reason) of files that could not be parsed.
        keys: each passage's vector key; sentences: how many sentences each passage has.
    """

    documents: list[dict]
    skipped: list[tuple[str, str]]
    keys: list[str]
    sentences: list[int]


class BuildWorker:
    """A Ray actor that chunks and embeds with one model.

    Args:
        model: the model name as the driver configured it (a name, hub id or local path; a
            path must exist on every node).
        backend: "onnx", "onnx-int8" or "torch", as the driver's.
    """

    def __init__(self, model: str, backend: str) -> None:
        os.environ["QA_THREADS"] = str(THREADS)
        config.ensure_offline()
        self.embedder = Embedder(model, backend=backend)

    def facts(self) -> dict:
        """Load the model and say what this worker runs, for the driver to check; a model
        that cannot load is reported as {"error", "hint"}."""
        try:
            facts = model_facts(self.embedder)
        except QAError as exc:
            return {"error": exc.message, "hint": exc.hint, "node": socket.gethostname()}
        return {**facts, "vector_id": self.embedder.vector_id, "qa_version": __version__,
                "chunker": CHUNKER_VERSION, "node": socket.gethostname()}  # fmt: skip

    def pid(self) -> int:
        """This worker's process id."""
        return os.getpid()

    def prepare(self, files: list[tuple[str, bytes, dict]]) -> tuple[Outline, Prepared]:
        """Parse and chunk files read by the driver (`loaders.read_file`), in their order.

        Returns:
            (the outline, the passages with chunk ids from 0: the driver renumbers them).
        """
        loaded = LoadResult([], [])
        for rel, data, stat in files:
            try:
                loaded.documents.append(parse_file(rel, data, stat))
            except (OSError, ValueError) as exc:
                skip(loaded, rel, exc)
        embedder, documents = self.embedder, loaded.documents
        chunks = chunk_documents(documents, embedder.count_tokens, embedder.max_tokens)
        prepared = Prepared.of(chunks, {d.path: d.title for d in documents}, embedder.vector_id)
        outline = Outline(document_entries(documents, chunks), loaded.skipped, prepared.keys,
                          [len(s) for s in prepared.spans])  # fmt: skip
        return outline, prepared

    def member_questions(self, texts: list[str]) -> list[np.ndarray]:
        """Each model's vectors of questions (`Embedder.member_questions`)."""
        return self.embedder.member_questions(texts)

    def embed(self, texts: list[str], spans: list[list[tuple[int, int]]]) -> Vectors:
        """Vectors of passages and of their sentences (`Embedder.encode_spans`)."""
        return self.embedder.encode_spans(texts, spans)
