"""Indexes in PostgreSQL with pgvector: `PostgresStore` for a postgresql:// URL.

Everything a search needs lives in the database (passages, vectors with an HNSW index when the
table is large, sentence vectors, BM25 postings, the manifest), several named indexes can share
one database, and builds switch generations in one transaction. The modules: url (locations),
connections, faults (errors), catalog (live pointers, generations), tables, ann (HNSW), writer,
generation, store. Needs the optional extra `qa[postgres]` (psycopg 3 and pgvector).
"""

from __future__ import annotations

from qa.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
