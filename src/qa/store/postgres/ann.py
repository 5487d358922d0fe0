"""Approximate search in PostgreSQL: when to build pgvector's HNSW index, and how wide to search.

Small tables are scanned exactly (no index: a sequential scan and a top-N sort); above
`HNSW_THRESHOLD` rows an HNSW index over inner product is built, and `hnsw.ef_search` (how
many candidates a search keeps) is calibrated on the data at build time: sentence vectors of
random passages stand in for questions (they are not in the index), the exact top 10 comes
from FAISS over the build's own vectors, and the smallest ef_search whose recall@10 reaches
`TARGET_RECALL` on them, times `MARGIN`, is kept and recorded in the manifest. Questions lie
farther from passages than a passage's own sentences, and need more candidates: on
medquad-full (45,043 passages) sentences reached 0.972 at ef_search 40, real questions 0.898
there and 0.962 at 120. A question asking for more passages than ef_search searches wider.

The stand-ins' recall is a sample: 200 of them moved the step reached by a whole step between
two builds of the same 1,000,000 rows, and x3 turned that into ef_search 240 or 720. So the
sample is 1,000 (the estimate's spread at 0.975 about 0.005) and the steps are close together
(`EF_SEARCH`), as docs/scaling.md tells.
"""

from __future__ import annotations

import logging
import os

import numpy as np
from psycopg import sql

from qa.errors import UsageError

HNSW_THRESHOLD = 10_000  # rows: an exact scan costs ~0.7 us a row here (docs/scaling.md)
HNSW_M = 16  # pgvector's default
# pgvector's default is 64; a wider search while the graph is built gives a graph that finds
# near-duplicate neighbours: on 1,000,000 tiled medquad-full vectors, real questions reached
# recall@10 0.888 at ef_search 480 over a 64 graph, 0.945-0.970 over a 256 one, and 0.970 at
# ef_search 240 over a 512 one; the whole 1,000,000-row build took 211 s, 413-426 s and
# 876-934 s (docs/scaling.md)
HNSW_EF_CONSTRUCTION = 512
EF_SEARCH = (20, 30, 40, 50, 60, 80, 100, 120, 160, 200, 240, 320)  # tried in order (x MARGIN)
MAX_EF_SEARCH = 1000  # pgvector's limit
TARGET_RECALL = 0.975
MARGIN = 3  # questions need about 3x the candidates sentences need (module text)
CALIBRATION_QUERIES = 1000
SEED = 1234
MAINTENANCE_WORK_MEM = "1GB"  # the HNSW graph must fit, or building it is ~5x slower
KINDS = ("auto", "flat", "hnsw")

log = logging.getLogger(__name__)


def choose(n: int, request: str | None) -> str:
    """"flat" (exact scan) or "hnsw" for n rows: as asked, else by size.

    Raises:
        UsageError: a kind PostgreSQL does not offer here (ivf).
    """
    request = request or "auto"
    if request not in KINDS:
        raise UsageError(f"index type {request!r} is not available on PostgreSQL",
                         "use auto, flat or hnsw")  # fmt: skip
    if request == "auto":
        return "hnsw" if n >= HNSW_THRESHOLD else "flat"
    return request


def build(conn, schema: str) -> None:
    """Create the HNSW index on the chunks (inside the build's transaction)."""
    memory = os.environ.get("QA_PG_MAINTENANCE_WORK_MEM", MAINTENANCE_WORK_MEM)
    conn.execute("select set_config('maintenance_work_mem', %s, true)", (memory,))
    conn.execute(sql.SQL(
        "create index on {}.chunks using hnsw (embedding vector_ip_ops) with (m = {}, "
        "ef_construction = {})"
    ).format(sql.Identifier(schema), sql.Literal(HNSW_M), sql.Literal(HNSW_EF_CONSTRUCTION)))


def calibrate(conn, schema: str, vectors: np.ndarray, queries: np.ndarray) -> dict:
    """The ef_search to search with: the smallest reaching `TARGET_RECALL` (recall@10 against
    exact search over `vectors`, the table's rows in id order) for `queries`, times `MARGIN`;
    what the manifest records."""
    import faiss

    k = min(10, len(vectors))
    _, truth = faiss.knn(np.ascontiguousarray(queries), np.ascontiguousarray(vectors), k,
                         metric=faiss.METRIC_INNER_PRODUCT)  # fmt: skip
    statement = sql.SQL("select id from {}.chunks order by embedding <#> %b limit %s").format(
        sql.Identifier(schema))
    recall = 0.0
    for ef in EF_SEARCH:
        conn.execute("select set_config('hnsw.ef_search', %s, true)", (str(ef),))
        found = [[r[0] for r in conn.execute(statement, (q, k)).fetchall()] for q in queries]
        recall = float(np.mean([len(set(f) & set(t.tolist())) / k
                                for f, t in zip(found, truth, strict=True)]))  # fmt: skip
        log.debug("ef_search %d: recall@10 %.3f", ef, recall)
        if recall >= TARGET_RECALL:
            break
    return {"kind": "hnsw", "m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION,
            "ef_search": min(MAX_EF_SEARCH, ef * MARGIN), "calibrated_ef_search": ef,
            "recall@10": round(recall, 4), "target": TARGET_RECALL,
            "queries": len(queries)}  # fmt: skip


class QuerySample:
    """A uniform sample of sentence vectors, kept as batches stream by (reservoir sampling)."""

    def __init__(self, size: int = CALIBRATION_QUERIES, seed: int = SEED) -> None:
        self.size, self.seen = size, 0
        self.rng = np.random.default_rng(seed)
        self.rows: list[np.ndarray] = []

    def add(self, vectors: np.ndarray) -> None:
        take = min(len(vectors), self.size - len(self.rows))
        self.rows.extend(row.copy() for row in vectors[:take])
        rest = vectors[take:]
        if len(rest):  # row i replaces a random kept one with probability size / (seen + 1)
            seen = self.seen + take + np.arange(len(rest))
            slot = self.rng.integers(0, seen + 1)
            for i in np.flatnonzero(slot < self.size):
                self.rows[int(slot[i])] = rest[i].copy()
        self.seen += len(vectors)

    def queries(self, dim: int) -> np.ndarray:
        return np.array(self.rows, dtype=np.float32).reshape(-1, dim)
