"""Writing one generation into PostgreSQL: one transaction from the first row to the switch.

Passages stream into the new schema's chunks table as batches arrive (binary COPY); `commit`
adds BM25's tables, the keys and indexes (HNSW when the table is large, with ef_search
calibrated), records the generation and switches `qa.current` to it, then commits. Until that
commit nobody sees any of it; a build killed at any moment rolls back to nothing (its backend
notices the dead client within `connections.CHECK_INTERVAL`).
"""

from __future__ import annotations

import logging

import numpy as np
from psycopg.types.json import Jsonb

from qa.ingest.terms import passage_text
from qa.store import bm25
from qa.store import manifest as manifests
from qa.store.base import Batch
from qa.store.postgres import ann, catalog, tables
from qa.store.postgres.faults import translated

log = logging.getLogger(__name__)


class PostgresWriter:
    """A generation being written on the build's connection (which holds the build lock).

    Args:
        conn: the build connection (autocommit; the writer runs one transaction on it).
        index: the index name.
        where: the password-free location, for messages.
    """

    def __init__(self, conn, index: str, where: str) -> None:
        self.conn, self.index, self.where = conn, index, where
        with translated(where):
            conn.autocommit = False  # everything below is one transaction
            generation = conn.execute("select nextval('qa.generation_seq')").fetchone()[0]
        self.generation = int(generation)
        self.schema = catalog.schema_name(index, self.generation)
        self._dim: int | None = None
        self._size = 0
        self._vectors: list[np.ndarray] = []
        self._lexical: list[str] = []
        self._sample = ann.QuerySample()
        self.committed: str | None = None
        log.debug("writing generation %s", self.schema)

    def _create(self, dim: int) -> None:
        if self._dim is None:
            tables.create(self.conn, self.schema, dim)
            self._dim = dim

    def add(self, batch: Batch) -> None:
        """Append passages, in chunk-id order."""
        vectors = np.asarray(batch.vectors, dtype=np.float32)
        sentence_vectors = np.asarray(batch.sentence_vectors, dtype=np.float32)
        bounds = np.cumsum([0, *(len(s) for s in batch.spans)])
        rows = []
        for i, (chunk, title, key, spans) in enumerate(
            zip(batch.chunks, batch.titles, batch.keys, batch.spans, strict=True)
        ):
            if chunk.id != self._size + i:
                raise ValueError(f"chunk {chunk.id} out of order")
            rows.append(tables.chunk_row(chunk, title, key, vectors[i], spans,
                                         sentence_vectors[bounds[i] : bounds[i + 1]]))  # fmt: skip
            self._lexical.append(passage_text(title or chunk.doc, chunk.section, chunk.text))
        with translated(self.where):
            self._create(vectors.shape[1])
            tables.copy_chunks(self.conn, self.schema, rows)
        self._size += len(rows)
        self._vectors.append(vectors)
        self._sample.add(sentence_vectors if len(sentence_vectors) else vectors)

    def commit(self, manifest: dict) -> str:
        """Index, record and switch to the generation in the build's transaction; returns its
        id (the schema name). Then drops older generations that no reader pins."""
        dim = manifest["model"]["dim"]
        vectors = np.concatenate([np.zeros((0, dim), np.float32), *self._vectors])
        with translated(self.where):
            self._create(dim)
            tables.copy_lexical(self.conn, self.schema, bm25.LexicalIndex.build(self._lexical))
            tables.index(self.conn, self.schema)
            kind = ann.choose(self._size, manifest.get("index_request"))
            search = {"kind": "flat"}
            if kind == "hnsw" and self._size:
                ann.build(self.conn, self.schema)
                search = ann.calibrate(self.conn, self.schema, vectors, self._sample.queries(dim))
            manifest = manifests.seal({
                **manifest,
                "chunks": self._size,
                "lexical": {"version": bm25.VERSION, "k1": bm25.K1, "b": bm25.B},
                "index_type": kind,
                "ann": search,
                "store": {"kind": "postgresql", "format": catalog.STORE_FORMAT,
                          "schema": self.schema},  # fmt: skip
            })  # checked against the schema, checksummed
            self.conn.execute(
                "insert into qa.generations (id, index_name, schema_name, manifest)"
                " values (%s, %s, %s, %s)",
                (self.generation, self.index, self.schema, Jsonb(manifest)),
            )
            self.conn.execute(
                "insert into qa.current (index_name, generation) values (%s, %s) on conflict"
                " (index_name) do update set generation = excluded.generation",
                (self.index, self.generation),
            )
            self.conn.commit()  # the switch
            self.committed = self.schema
            self.conn.autocommit = True
        log.debug("generation %s is live", self.schema)
        try:
            with translated(self.where):
                catalog.drop_old(self.conn, self.index)
        except Exception as exc:  # noqa: BLE001 - the build is live; the next one cleans up
            log.debug("old generations left for the next build: %s", exc)
        return self.schema

    def discard(self) -> None:
        """Roll back an uncommitted generation (nothing, once committed)."""
        if self.committed is None and not self.conn.closed:
            try:
                self.conn.rollback()
                self.conn.autocommit = True
            except Exception as exc:  # noqa: BLE001 - a dead connection rolled back already
                log.debug("rollback failed: %s", exc)
