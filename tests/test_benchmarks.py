"""The benchmarks' own helpers, run small: a schema change must not break them unseen.

`benchmarks/postgres.py ann` writes tiled vectors through each store's writer with a
hand-made manifest; when the manifest schema gained per-document chunk counts, that writer
stopped working and nothing noticed until a 1,000,000-vector run failed. Here it writes a few
hundred vectors into both stores and searches them back.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def postgres_bench():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import postgres as bench

        yield bench
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.parametrize("kind", ["local", "postgres"])
def test_the_ann_benchmark_writes_a_searchable_generation(postgres_bench, kind, tmp_path,
                                                          pg_server):  # fmt: skip
    from qa.store import open_store

    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((250, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    location = str(tmp_path / "index") if kind == "local" else pg_server.index_url("bench-ann")
    store = open_store(location)
    assert postgres_bench.write_synthetic(store, vectors) > 0
    generation = store.open()
    assert generation.size == 250 and store.manifest()["chunks"] == 250
    ids, _ = generation.dense(vectors[17], 3)
    assert ids[0] == 17
