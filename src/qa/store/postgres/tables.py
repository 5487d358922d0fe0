"""The tables of one generation (schema `qa_<index>_g<N>`), and how they are filled.

    chunks    one row per passage: id (its chunk id), document, section, offsets, page, text,
              title, vector key, embedding vector(dim) (normalised; HNSW index for inner
              product above `ann.HNSW_THRESHOLD` rows), sentence spans (int4[]: start, end,
              start, end...) and sentence vectors (bytea: float32 little-endian rows)
    terms     BM25 vocabulary: term, id, df (in how many passages it occurs)
    postings  BM25 impact of each (term, passage): bm25s's Lucene score, the very float32
              the local store keeps, so both stores rank alike; (term_id) index includes the
              rest, so a question reads postings by index-only scans

Rows arrive by binary COPY ... FREEZE into tables created in the same transaction, so they
are visible to index-only scans without a VACUUM.
"""

from __future__ import annotations

import numpy as np
from psycopg import sql

CHUNK_COLUMNS = ("id", "doc", "section", "start_offset", "end_offset", "text", "page",
                 "source_start", "source_end", "title", "key", "embedding", "spans",
                 "sentence_vectors")  # fmt: skip
CHUNK_TYPES = ["int4", "text", "text", "int4", "int4", "text", "int4", "int4", "int4", "text",
               "text", "vector", "int4[]", "bytea"]  # fmt: skip
SENTENCE_DTYPE = np.dtype("<f4")


def create(conn, schema: str, dim: int) -> None:
    """Create a generation's schema and empty tables (inside the build's transaction)."""
    s = sql.Identifier(schema)
    conn.execute(sql.SQL("create schema {}").format(s))
    conn.execute(sql.SQL(
        "create table {}.chunks (id int4 not null, doc text not null, section text,"
        " start_offset int4 not null, end_offset int4 not null, text text not null, page int4,"
        " source_start int4, source_end int4, title text not null, key text not null,"
        " embedding vector({}) not null, spans int4[] not null, sentence_vectors bytea not null)"
    ).format(s, sql.Literal(int(dim))))
    conn.execute(sql.SQL("create table {}.terms (term text not null, id int4 not null,"
                         " df int4 not null)").format(s))  # fmt: skip
    conn.execute(sql.SQL("create table {}.postings (term_id int4 not null, chunk_id int4 not"
                         " null, score float4 not null)").format(s))  # fmt: skip


def copy_chunks(conn, schema: str, rows) -> None:
    """COPY passage rows (in `CHUNK_COLUMNS` order) into the chunks table."""
    statement = sql.SQL("copy {}.chunks ({}) from stdin with (format binary, freeze)").format(
        sql.Identifier(schema), sql.SQL(", ").join(map(sql.Identifier, CHUNK_COLUMNS)))
    with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types(CHUNK_TYPES)
        for row in rows:
            copy.write_row(row)


def copy_lexical(conn, schema: str, index) -> None:
    """COPY a `bm25.LexicalIndex` into the terms and postings tables (postings as one binary
    stream built with numpy: millions of rows, too many for one Python call each)."""
    s = sql.Identifier(schema)
    terms = sorted(index.vocab.items(), key=lambda item: item[1])
    df = np.diff(index.indptr)
    with conn.cursor() as cur:
        with cur.copy(sql.SQL("copy {}.terms from stdin with (format binary, freeze)")
                      .format(s)) as copy:  # fmt: skip
            copy.set_types(["text", "int4", "int4"])
            for term, tid in terms:
                copy.write_row((term, tid, int(df[tid])))
        keep = np.zeros(len(index.indptr) - 1, bool)
        keep[[tid for _, tid in terms]] = True  # bm25s's empty token has no term row
        term_ids = np.repeat(np.arange(len(df), dtype=np.int64), df)
        rows = keep[term_ids]
        with cur.copy(sql.SQL("copy {}.postings from stdin with (format binary, freeze)")
                      .format(s)) as copy:  # fmt: skip
            copy.write(binary_rows(term_ids[rows], index.indices[rows], index.data[rows]))


def binary_rows(term_ids: np.ndarray, chunk_ids: np.ndarray, scores: np.ndarray) -> bytes:
    """A COPY BINARY stream of (int4, int4, float4) rows: header, fixed-size rows, trailer."""
    record = np.dtype([("n", ">i2"), ("l1", ">i4"), ("t", ">i4"), ("l2", ">i4"), ("c", ">i4"),
                       ("l3", ">i4"), ("s", ">f4")])  # fmt: skip
    out = np.empty(len(term_ids), dtype=record)
    out["n"], out["l1"], out["l2"], out["l3"] = 3, 4, 4, 4
    out["t"], out["c"], out["s"] = term_ids, chunk_ids, scores
    header = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
    return header + out.tobytes() + (-1).to_bytes(2, "big", signed=True)


def index(conn, schema: str) -> None:
    """Keys and indexes on the filled tables (HNSW is separate: `ann.build`), then statistics."""
    s = sql.Identifier(schema)
    for statement in (
        "alter table {}.chunks add primary key (id)",
        "create index on {}.chunks (doc)",
        "alter table {}.terms add primary key (term)",
        "create index on {}.postings (term_id) include (chunk_id, score)",
        "analyze {}.chunks",
        "analyze {}.terms",
        "analyze {}.postings",
    ):
        conn.execute(sql.SQL(statement).format(s))


def chunk_row(chunk, title: str, key: str, vector: np.ndarray, spans, sentence_vectors) -> tuple:
    """One passage as a row of the chunks table."""
    flat = [int(x) for span in spans for x in span]
    blob = np.ascontiguousarray(sentence_vectors, dtype=SENTENCE_DTYPE).tobytes()
    return (chunk.id, chunk.doc, chunk.section, chunk.start, chunk.end, chunk.text, chunk.page,
            chunk.source_start, chunk.source_end, title or chunk.doc, key,
            np.asarray(vector, np.float32), flat, blob)  # fmt: skip


def sentence_bytes(sentences: int, dim: int) -> int:
    """The size of the sentence-vector bytea of a passage with `sentences` sentences."""
    return sentences * dim * SENTENCE_DTYPE.itemsize


def sentence_vectors(blob: bytes, dim: int) -> np.ndarray:
    """The sentence vectors of a passage, from its bytea."""
    return np.frombuffer(blob, dtype=SENTENCE_DTYPE).reshape(-1, dim).astype(np.float32)


def problems(conn, schema: str, size: int, dim: int) -> list[str]:
    """What in a generation's tables does not match its manifest (`size` passages of `dim`
    dimensions), in words; [] when nothing. Every row is read: the passages are all there,
    numbered 0..size-1, each with its sentences' vectors (or none, for a build without them),
    and the BM25 postings point at them (a database keeps no checksums of its own to compare).
    """
    s = sql.Identifier(schema)
    rows, low, high, sentences = conn.execute(sql.SQL(
        "select count(*), coalesce(min(id), 0), coalesce(max(id), -1), count(*) filter"
        " (where octet_length(sentence_vectors) not in (0, coalesce(array_length(spans, 1),"
        " 0) / 2 * %s)) from {}.chunks").format(s), (sentence_bytes(1, dim),)).fetchone()
    terms, postings, outside = conn.execute(sql.SQL(
        "select (select count(*) from {s}.terms), count(*), count(*) filter"
        " (where chunk_id < 0 or chunk_id >= %s) from {s}.postings").format(s=s), (size,)
    ).fetchone()  # fmt: skip
    found = []
    if (rows, low, high) != (size, 0, size - 1):
        found.append(f"{rows} passages (ids {low}-{high}) where the manifest lists {size}")
    if sentences:
        found.append(f"sentence vectors that do not fit their passage in {sentences} of them")
    if (terms == 0) != (postings == 0) or outside:  # (passages of stop words only: none)
        found.append("BM25 postings missing or pointing outside the passages")
    return found
