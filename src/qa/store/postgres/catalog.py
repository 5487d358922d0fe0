"""The catalogue: which generation of each named index is live, and the tables of one.

    qa.meta          key/value: the store format of this database ("format")
    qa.generations   one row per committed generation: id, index name, schema, manifest (jsonb)
    qa.current       one row per index: the live generation (switched in one UPDATE)
    qa_<index>_g<N>  one schema per generation (see `qa.store.postgres.tables`)

A generation's schema is created, filled and indexed inside the build's transaction, and the
same transaction switches `qa.current`, so a reader sees the old generation or the new one and
never a mix; a killed build rolls back and leaves nothing. Readers pin the generation they read
with a shared advisory lock (per schema), and a build drops an old generation only when it can
take that lock exclusively, so a schema is never dropped under a reader; what it cannot drop
yet, the next build does.
"""

from __future__ import annotations

import hashlib
import logging

from qa.errors import IndexCorruptError

STORE_FORMAT = "1"  # of the catalogue and generation tables; another one is refused
SCHEMA = "qa"
log = logging.getLogger(__name__)

CATALOG_DDL = (
    "create schema if not exists qa",
    "create table if not exists qa.meta (key text primary key, value text not null)",
    "create sequence if not exists qa.generation_seq",
    "create table if not exists qa.generations (id bigint primary key, index_name text not null,"
    " schema_name text not null unique, manifest jsonb not null,"
    " created_at timestamptz not null default now())",
    "create table if not exists qa.current (index_name text primary key,"
    " generation bigint not null references qa.generations (id))",
)
LIVE = (
    "select g.schema_name, (select value from qa.meta where key = 'format') from qa.current c"
    " join qa.generations g on g.id = c.generation where c.index_name = %s"
)


def lock_key(kind: str, name: str) -> int:
    """A stable 64-bit advisory lock key (PostgreSQL's hashtext is internal and may change)."""
    digest = hashlib.blake2b(f"qa-{kind}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def schema_name(index: str, generation: int) -> str:
    """The schema of one generation of an index."""
    return f"qa_{index}_g{generation}"


def check_format(found: str | None, where: str) -> None:
    """Refuse a catalogue written by another version of qa."""
    if found != STORE_FORMAT:
        raise IndexCorruptError(
            f"the index at {where} was written by another version of qa "
            f"(store format {found}; this qa reads {STORE_FORMAT})",
            "use the qa version that built it, or rebuild it into another database or index name",
        )


def live(conn, index: str, where: str) -> str | None:
    """The live generation's schema, or None when the index was never built.

    Raises:
        IndexCorruptError: a catalogue of another version.
    """
    import psycopg

    try:
        row = conn.execute(LIVE, (index,)).fetchone()
    except psycopg.errors.UndefinedTable:  # no qa catalogue in this database (yet)
        return None
    if row is None:
        return None
    check_format(row[1], where)
    return row[0]


def ensure(conn, where: str) -> None:
    """Create the pgvector extension (when missing) and the catalogue (when missing); refuse a
    catalogue of another version. One session at a time (a transaction-level lock)."""
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (lock_key("catalog", SCHEMA),))
        if not conn.execute("select 1 from pg_extension where extname = 'vector'").fetchone():
            conn.execute("create extension if not exists vector")
        for statement in CATALOG_DDL:
            conn.execute(statement)
        conn.execute("insert into qa.meta values ('format', %s) on conflict do nothing",
                     (STORE_FORMAT,))  # fmt: skip
        found = conn.execute("select value from qa.meta where key = 'format'").fetchone()
    check_format(found[0], where)


def drop_old(conn, index: str) -> list[str]:
    """Drop the generations of an index that are not live and that no reader pins (and any
    schema of the index that no generation row names); returns the schemas dropped."""
    import psycopg
    from psycopg import sql

    rows = conn.execute(
        "select n.nspname from pg_namespace n where n.nspname ~ %s and n.nspname not in"
        " (select g.schema_name from qa.current c join qa.generations g on g.id = c.generation"
        " where c.index_name = %s)",
        (f"^qa_{index}_g[0-9]+$", index),  # index names are [a-z0-9_]: nothing to escape
    ).fetchall()
    dropped = []
    for (schema,) in rows:
        try:
            with conn.transaction():
                conn.execute("set local lock_timeout = '2s'")
                if not conn.execute("select pg_try_advisory_xact_lock(%s)",
                                    (lock_key("generation", schema),)).fetchone()[0]:  # fmt: skip
                    log.debug("generation %s is still read; left for the next build", schema)
                    continue
                conn.execute(sql.SQL("drop schema if exists {} cascade").format(
                    sql.Identifier(schema)))  # fmt: skip
                conn.execute("delete from qa.generations where schema_name = %s", (schema,))
            dropped.append(schema)
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
            log.debug("generation %s is busy; left for the next build", schema)
    if dropped:
        log.debug("dropped %s", ", ".join(dropped))
    return dropped
