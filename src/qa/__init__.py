"""qa: local, offline retrieval question answering over a folder of documents.

The pipeline, one package per step (each imports only the packages above it)::

    ingest    -> Document, Chunk   files as plain text (a loader per format), passages, terms
    embed     -> vectors           sentence-transformers (torch or ONNX), packaged offline model
    store     -> Generation        where an index lives: a folder (FAISS + files), behind a seam
    retrieve  -> Answer, Hit       ranking, "answered", highlights: the Searcher
    present                        what the page and the terminal show (escaping, citations)
    build, evaluate, staleness, cli: on top
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = ["Chunk", "Document", "Hit", "QAError", "Searcher", "build_index", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from qa.build import build_index
    from qa.errors import QAError
    from qa.ingest.chunking import Chunk
    from qa.ingest.loaders import Document
    from qa.retrieve.results import Hit
    from qa.retrieve.searcher import Searcher

_LAZY = {
    "build_index": "qa.build",
    "Chunk": "qa.ingest.chunking",
    "QAError": "qa.errors",
    "Document": "qa.ingest.loaders",
    "Hit": "qa.retrieve.results",
    "Searcher": "qa.retrieve.searcher",
}


def __getattr__(name: str):
    """Import public names on first use, so `import qa` stays cheap (no torch)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'qa' has no attribute {name!r}")
