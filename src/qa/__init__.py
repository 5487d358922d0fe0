"""qa: local, offline retrieval question answering over a folder of documents.

The pipeline, one module per step::

    loaders   -> Document          .txt/.md/.html/.pdf files as plain text (one module a format)
    chunking  -> Chunk             paragraphs under their section headings, sized to the model
    embedding -> vectors           sentence-transformers, packaged offline model by default
    store     -> index folder      FAISS + chunk table + manifest, switched in atomically
    search    -> Hit               the Searcher that the CLI and the page share
    build                          load -> chunk -> embed -> store, as one call
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
    from qa.retrieve.searcher import Hit, Searcher

_LAZY = {
    "build_index": "qa.build",
    "Chunk": "qa.ingest.chunking",
    "QAError": "qa.errors",
    "Document": "qa.ingest.loaders",
    "Hit": "qa.retrieve.searcher",
    "Searcher": "qa.retrieve.searcher",
}


def __getattr__(name: str):
    """Import public names on first use, so `import qa` stays cheap (no torch)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'qa' has no attribute {name!r}")
