"""Where an index lives: `open_store(location)` gives the `Store` for a folder (the default).

See `qa.store.base` for the seam every store implements.
"""

from __future__ import annotations

import os

from qa.store.base import Batch, Generation, LexicalHits, Passages, Store, Writer

__all__ = ["Batch", "Generation", "LexicalHits", "Passages", "Store", "Writer", "open_store"]


def open_store(location: str | os.PathLike | Store | None = None) -> Store:
    """The store at `location`: an index folder (default: $QA_INDEX or ./index), or a `Store`
    as it is."""
    from qa import config

    if location is not None and not isinstance(location, (str, os.PathLike)):
        return location
    from qa.store.local import LocalStore

    return LocalStore(config.index_dir(location))
