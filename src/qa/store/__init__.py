"""Where an index lives: `open_store(location)` gives the `Store` for a folder (the default) or
a PostgreSQL database (a postgresql:// URL; see `qa.store.postgres`).

See `qa.store.base` for the seam every store implements.
"""

from __future__ import annotations

import os
from functools import lru_cache

from qa.store.base import Batch, Generation, LexicalHits, Passages, Store, Writer

__all__ = ["Batch", "Generation", "LexicalHits", "Passages", "Store", "Writer", "open_store"]


def open_store(location: str | os.PathLike | Store | None = None) -> Store:
    """The store at `location`: an index folder or a PostgreSQL URL (default: $QA_INDEX, else
    ./index), or a `Store` as it is."""
    from qa import config

    if location is not None and not isinstance(location, (str, os.PathLike)):
        return location
    where = config.index_location(location)
    if config.is_database_url(where):
        return _database(where)
    from qa.store.local import LocalStore

    return LocalStore(where)


@lru_cache(maxsize=16)
def _database(url: str) -> Store:
    """One `PostgresStore` per URL and process, so its connections and the live manifest are
    shared by everything that opens the same index (the page opens it on every rerun).

    Raises:
        QAError: the optional PostgreSQL support (psycopg, pgvector) is not installed.
    """
    try:
        import pgvector.psycopg  # noqa: F401 - needed on first connection; checked here

        from qa.store.postgres import PostgresStore
    except ImportError:
        from qa.errors import QAError, install_hint

        raise QAError("PostgreSQL support (psycopg and pgvector) is not installed",
                      install_hint("postgres")) from None
    return PostgresStore(url)
