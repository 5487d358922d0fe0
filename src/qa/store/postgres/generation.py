"""One generation in PostgreSQL, searched where it lives: every call is one query that returns
the top N (or the few rows asked for), so a searching process holds no corpus-sized arrays.

Results match the local store's: dense scores are the same float32 inner products of the same
vectors (equal scores, from passages that repeat, ordered as FAISS's exact search orders them:
the higher chunk id first, or the lower when one passage is asked for), BM25 sums bm25s's
own float32 impacts (ties by chunk id), and a document filter searches the allowed rows
exactly (an HNSW scan filters after it searched and could return fewer rows than asked).
"""

from __future__ import annotations

import weakref
from collections.abc import Collection, Iterator, Sequence

import numpy as np
from psycopg import sql

from qa.errors import REBUILD_HINT, IndexCorruptError, QAError
from qa.ingest.chunking import Chunk
from qa.store.base import Docs, LexicalHits, Passages
from qa.store.postgres import ann, tables
from qa.store.postgres.faults import reason, translate

POOLED = "pooled"  # as qa.store.local_generation: sentence vectors pooled from the passage
_PASSAGES = ("select id, doc, section, start_offset, end_offset, text, page, source_start,"
             " source_end, title, embedding, spans, sentence_vectors from {s}.chunks"
             " where id = any(%s)")  # fmt: skip
_DENSE = ("select id, -(embedding <#> %(q)b) from {s}.chunks{where}"
          " order by embedding <#> %(q)b{ties} limit %(n)s")  # fmt: skip
_LEXICAL = (
    "with q as materialized (select t.id, count(*)::float8 as qtf from unnest(%(terms)s::text[])"
    " as u(term) join {s}.terms t on t.term = u.term group by t.id),"
    " s as (select p.chunk_id, sum(q.qtf * p.score)::float4 as score from q join {s}.postings p"
    " on p.term_id = q.id{where} group by p.chunk_id)"
)
_TOP = " select chunk_id, score from s where score > 0 order by score desc, chunk_id limit %(n)s"
_TERMS = "select term, df from {s}.terms where term = any(%s)"
_IN_DOCS = " where p.chunk_id in (select id from {s}.chunks where doc = any(%(docs)s))"


class PostgresGeneration:
    """A live or recent generation (see `qa.store.base.Generation` for the calls).

    Args:
        pool: connections for the queries.
        schema: the generation's schema (its id).
        manifest: its manifest.
        pin: a connection holding the generation's shared advisory lock, so no build drops it
            while this object lives (closed, which releases it, when the object goes).
    """

    def __init__(self, pool, schema: str, manifest: dict, pin) -> None:
        self.id, self.manifest, self.size = schema, manifest, int(manifest["chunks"])
        self.dim = int(manifest["model"]["dim"])
        search = manifest.get("ann") or {}
        self.ef_search = search.get("ef_search") if manifest.get("index_type") == "hnsw" else None
        self._pool = pool
        self._sql = {"passages": sql.SQL(_PASSAGES), "terms": sql.SQL(_TERMS)}
        self._s = sql.Identifier(schema)
        self._vocabulary: frozenset[str] | None = None
        weakref.finalize(self, pin.close)

    def _run(self, work):
        import psycopg

        try:
            return self._pool.run(work)
        except psycopg.errors.UndefinedTable as exc:
            raise _table_gone(self._pool, self.id, exc) from None
        except psycopg.Error as exc:
            raise translate(exc, self._pool.where) from None

    def dense(self, query: np.ndarray, n: int, docs: Docs = None) -> tuple[np.ndarray, np.ndarray]:
        n = min(n, self.size)
        if n <= 0 or (docs is not None and not docs):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        exact = docs is not None or self.ef_search is None or n > ann.MAX_EF_SEARCH
        where = " where doc = any(%(docs)s)" if docs is not None else ""
        first = n > 1  # FAISS's exact search: the higher id first, but for one result the lower
        ties = (", id desc" if first else ", id") if exact else ""
        statement = sql.SQL(_DENSE.format(s="{s}", where=where, ties=ties))
        params = {"q": np.asarray(query, np.float32), "n": n, "docs": list(docs or [])}

        def work(conn):
            with conn.transaction():
                if docs is not None:  # bitmap scan on doc, then sort: exact, never under-filled
                    conn.execute("set local enable_indexscan = off")
                elif not exact:
                    conn.execute("select set_config('hnsw.ef_search', %s, true)",
                                 (str(max(self.ef_search, n)),))  # fmt: skip
                return conn.execute(statement.format(s=self._s), params).fetchall()

        rows = self._run(work)
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        scores = np.array([r[1] for r in rows], dtype=np.float32)
        order = np.lexsort((-ids if first else ids, -scores))  # ties as FAISS orders them
        return ids[order], scores[order]

    def lexical(self, terms: Sequence[str], n: int, docs: Docs = None) -> LexicalHits:
        if not terms or n <= 0 or (docs is not None and not docs):
            return LexicalHits(np.zeros(0, np.int64), np.zeros(0, np.float32))
        where = _IN_DOCS if docs is not None else ""
        text = _LEXICAL.format(s="{s}", where=where) + _TOP
        params = {"terms": list(terms), "n": n, "docs": list(docs or [])}
        statement = sql.SQL(text).format(s=self._s)
        rows = self._run(lambda conn: conn.execute(statement, params).fetchall())
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        scores = np.array([r[1] for r in rows], dtype=np.float32)
        order = np.lexsort((ids, -scores))  # (already so ordered; kept explicit)
        return LexicalHits(ids[order], scores[order])

    def vocabulary(self) -> Collection[str]:
        if self._vocabulary is None:  # once per generation (read only when a word is not found)
            statement = sql.SQL("select term from {s}.terms").format(s=self._s)
            rows = self._run(lambda conn: conn.execute(statement).fetchall())
            self._vocabulary = frozenset(r[0] for r in rows)
        return self._vocabulary

    def term_frequencies(self, terms: Sequence[str]) -> np.ndarray:
        if not terms:
            return np.zeros(0, np.int64)
        statement = self._sql["terms"].format(s=self._s)
        found = dict(self._run(lambda conn: conn.execute(statement, (list(terms),)).fetchall()))
        return np.array([found.get(t, 0) for t in terms], dtype=np.int64)

    def verify(self) -> str:
        """Read every table and check it against the manifest (`qa info --verify`; see
        `tables.problems`).

        Raises:
            IndexCorruptError: what does not match.
        """
        found = self._run(lambda conn: tables.problems(conn, self.id, self.size, self.dim))
        if found:
            raise IndexCorruptError(f"the index at {self._pool.where} is damaged: "
                                    + "; ".join(found), REBUILD_HINT)  # fmt: skip
        return (f"every table matches the manifest: {self.size} passages, their vectors and "
                "the BM25 postings")

    def passages(self, ids: Sequence[int] | np.ndarray) -> Passages:
        ids = np.asarray(ids, dtype=np.int64)
        statement = self._sql["passages"].format(s=self._s)

        def work(conn):
            with conn.cursor(binary=True) as cur:
                return cur.execute(statement, (ids.tolist(),)).fetchall()

        rows = {r[0]: r for r in (self._run(work) if len(ids) else [])}
        if len(rows) != len(set(ids.tolist())):
            raise IndexCorruptError(f"the index at {self._pool.where} lacks passages it ranked",
                                    REBUILD_HINT)  # fmt: skip
        picked = [rows[int(i)] for i in ids]
        spans = [np.asarray(r[11], dtype=np.int32).reshape(-1, 2) for r in picked]
        fits = (len(r[12]) in (0, tables.sentence_bytes(len(s), self.dim))  # (0: built without)
                for r, s in zip(picked, spans, strict=True))
        if not all(fits):
            raise IndexCorruptError(f"the index at {self._pool.where} is damaged: sentence "
                                    "vectors that do not fit their passage", REBUILD_HINT)
        return Passages(
            ids,
            [Chunk(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]) for r in picked],
            [r[9] for r in picked],
            np.array([r[10].to_numpy() for r in picked], dtype=np.float32).reshape(-1, self.dim),
            np.concatenate(([0], np.cumsum([len(s) for s in spans]))).astype(np.int64),
            np.concatenate([np.zeros((0, 2), np.int32), *spans]),
            np.concatenate([np.zeros((0, self.dim), np.float32),
                            *(tables.sentence_vectors(r[12], self.dim) for r in picked)]),
        )  # fmt: skip

    def reusable(self, conn, keys: set[str], vector_space: str, dim: int) -> Iterator[tuple]:
        """(key, vector, sentence vectors) of passages with these keys, when this generation
        was embedded in `vector_space` with pooled sentence vectors (read on `conn`, streamed)."""
        from qa.embed.models import vector_id

        model = self.manifest["model"]
        if (vector_id(model["id"], model.get("backend", "torch")) != vector_space
                or model["dim"] != dim or self.manifest.get("sentence_vectors") != POOLED):
            return  # fmt: skip
        statement = sql.SQL(
            "select key, embedding, sentence_vectors, coalesce(array_length(spans, 1), 0) / 2"
            " from {}.chunks").format(self._s)  # fmt: skip
        with conn.transaction(), conn.cursor(name="qa_reuse", binary=True) as cur:
            cur.itersize = 2000
            for key, vector, blob, sentences in cur.execute(statement):
                if key in keys and len(blob) == tables.sentence_bytes(sentences, dim):  # else: new
                    yield key, vector.to_numpy(), tables.sentence_vectors(blob, dim)


def _table_gone(pool, schema: str, exc) -> QAError:
    """The error for a table of generation `schema` that is not there: a build dropped the
    generation (its pin was lost with a connection), or, while the catalogue still lists it,
    someone dropped the table by hand."""
    import psycopg

    try:
        listed = pool.run(lambda conn: conn.execute(
            "select 1 from qa.generations where schema_name = %s", (schema,)).fetchone())
    except psycopg.Error:
        listed = None
    if listed:
        return IndexCorruptError(f"the index at {pool.where} is damaged: {reason(exc)}",
                                 REBUILD_HINT)  # fmt: skip
    return QAError(f"the index at {pool.where} changed while answering",
                   "ask again: the next question uses the new index")
