"""The PostgreSQL store: named indexes in one database, shared by every machine that reaches it.

See `qa.store.postgres.catalog` for the tables and how generations switch, `writer` for a
build, `generation` for searching.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from qa.errors import REBUILD_HINT, IndexCorruptError, QAError
from qa.store import manifest as manifests
from qa.store.base import missing_index
from qa.store.postgres import ann, catalog
from qa.store.postgres.connections import Pool, connect
from qa.store.postgres.faults import NoVectorExtension, translated
from qa.store.postgres.generation import PostgresGeneration
from qa.store.postgres.url import parse
from qa.store.postgres.writer import PostgresWriter

READ_RETRIES = 3
WAIT_POLL = 0.5  # seconds between tries for the build lock with --wait
log = logging.getLogger(__name__)


class PostgresStore:
    """One named index in a PostgreSQL database (see the module text).

    Args:
        url: postgresql://user:password@host:port/database[?index=NAME]

    Raises:
        UsageError: a malformed URL or index name.
    """

    shared = True  # many page servers read it; none should rebuild it on its own
    index_types = ann.KINDS  # vector index kinds a build may ask for

    def __init__(self, url: str) -> None:
        self._url = parse(url)
        self.location, self.name = self._url.shown, self._url.name
        self._pool: Pool | None = None
        self._pool_lock = threading.Lock()
        self._build = None  # the build connection while lock() is held
        self._manifests: dict[str, dict] = {}

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r})"

    @property
    def pool(self) -> Pool:
        with self._pool_lock:
            if self._pool is None:
                self._pool = Pool(self._url.conninfo, self.location)
            return self._pool

    def current(self) -> str | None:
        """The live generation's schema, or None (one short query)."""
        try:
            with translated(self.location):
                return self.pool.run(lambda conn: catalog.live(conn, self.name, self.location))
        except NoVectorExtension:  # no pgvector yet: a fresh database, never built on
            conn = connect(self._url.conninfo, self.location, "reader", vector=False)
            try:
                with translated(self.location):
                    if catalog.live(conn, self.name, self.location) is None:
                        return None  # "no index" (the build creates the extension), not
            finally:  # "install pgvector", which a superuser may long have done
                conn.close()
            raise

    def manifest(self) -> dict:
        """The live generation's manifest (fetched once per generation)."""
        for _attempt in range(READ_RETRIES):
            schema = self.current()
            if schema is None:
                raise missing_index(self.location)
            if schema in self._manifests:
                return self._manifests[schema]
            with translated(self.location):
                row = self.pool.run(lambda conn, s=schema: conn.execute(
                    "select manifest from qa.generations where schema_name = %s", (s,)
                ).fetchone())  # fmt: skip
            if row is not None:
                manifest = manifests.check(row[0], self.location)
                self._manifests = {schema: manifest}  # the live one only
                return manifest
        raise _changing(self.location)

    def open(self) -> PostgresGeneration:
        """The live generation, pinned so no build drops it while it is searched."""
        for _attempt in range(READ_RETRIES):
            schema = self.current()
            if schema is None:
                raise missing_index(self.location)
            pin = connect(self._url.conninfo, self.location, "reader", vector=False)
            try:
                with translated(self.location):
                    pin.execute("select pg_advisory_lock_shared(%s)",
                                (catalog.lock_key("generation", schema),))  # fmt: skip
                    row = pin.execute(
                        "select manifest, to_regnamespace(%s) is not null from qa.generations"
                        " where schema_name = %s", (schema, schema)
                    ).fetchone()  # fmt: skip
            except BaseException:
                pin.close()
                raise
            if row is not None and row[1]:
                manifest = manifests.check(row[0], self.location)
                return PostgresGeneration(self.pool, schema, manifest, pin)
            if row is not None:  # listed, pinned, yet gone: dropped by hand, not by a build
                pin.close()
                raise IndexCorruptError(f"the index at {self.location} is damaged: its live "
                                        f"schema {schema} is gone", REBUILD_HINT)
            pin.close()  # dropped between reading the pointer and pinning: read it again
            log.debug("generation %s went away while opening; reading again", schema)
        raise _changing(self.location)

    def verify(self) -> str:
        """See `Store.verify`: every table of the live generation, against its manifest."""
        return self.open().verify()

    @contextmanager
    def lock(self, wait: bool = False) -> Iterator[None]:
        """Hold the index's build lock (a session advisory lock, released by the server if
        this process dies), after creating the catalogue if needed and dropping old
        generations."""
        from pgvector.psycopg import register_vector

        conn = connect(self._url.conninfo, self.location, "build", vector=False)
        try:
            key = catalog.lock_key("build", self.name)
            with translated(self.location):
                if not conn.execute("select pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
                    if not wait:
                        raise QAError(f"another `qa build` is running on {self.location}",
                                      "wait for it to finish, or use --wait to queue behind it")
                    log.warning("waiting for another `qa build` on %s to finish", self.location)
                    while not conn.execute("select pg_try_advisory_lock(%s)",
                                           (key,)).fetchone()[0]:  # fmt: skip
                        time.sleep(WAIT_POLL)
                log.debug("lock taken on %s", self.location)
                catalog.ensure(conn, self.location)  # creates the vector extension if needed
                register_vector(conn)
                catalog.drop_old(conn, self.name)
            self._build = conn
            yield
        finally:
            self._build = None
            conn.close()  # ends the session: the lock goes with it

    def reusable(self, keys: Sequence[str], vector_space: str, dim: int) -> Iterator[tuple]:
        """(key, vector, sentence vectors) of live passages with these keys (see `Store`)."""
        try:
            live = self.open()
        except QAError as exc:
            log.debug("no vectors to reuse: %s", exc)
            return
        with translated(self.location), self.pool.connection() as conn:
            yield from live.reusable(conn, set(keys), vector_space, dim)

    @contextmanager
    def writer(self) -> Iterator[PostgresWriter]:
        """A new generation, written in one transaction on the build connection."""
        if self._build is None:
            raise RuntimeError("hold the store's lock() while writing")
        writer = PostgresWriter(self._build, self.name, self.location)
        try:
            yield writer
        finally:
            writer.discard()


def _changing(where: str) -> IndexCorruptError:
    return IndexCorruptError(f"index at {where} kept changing while being read",
                             "try again in a moment")  # fmt: skip
