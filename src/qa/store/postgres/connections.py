"""Connections to the database: opened with qa's settings, kept in a small pool for searches.

The pool is a list of idle connections, not psycopg_pool: a search that cannot connect must
fail at once with the server's own reason (wrong password, server down...), which a pool that
connects in the background turns into a timeout. A connection that broke is dropped, and a
query that finds its connection broken (the server restarted) runs once more on a new one, so
a long-running page recovers by itself when the server is back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from qa.store.postgres.faults import is_lost, translate

CONNECT_TIMEOUT = 10  # seconds, unless the URL (or PGCONNECT_TIMEOUT) says otherwise
CHECK_INTERVAL = "1s"  # a build's backend notices within this that its client died
IDLE = 32  # connections a pool keeps open for later searches (one per searching thread)

T = TypeVar("T")


def connect(conninfo: str, where: str, purpose: str = "search", vector: bool = True):
    """A new autocommit connection (pgvector types registered when `vector`).

    Raises:
        QAError: cannot connect or log in, or the vector extension is missing.
    """
    import os

    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        given = conninfo_to_dict(conninfo)
        extra = {} if "connect_timeout" in given or os.environ.get("PGCONNECT_TIMEOUT") else {
            "connect_timeout": CONNECT_TIMEOUT}  # fmt: skip
        if "application_name" not in given:
            extra["application_name"] = f"qa {purpose}"
        conn = psycopg.connect(conninfo, autocommit=True, **extra)
    except psycopg.Error as exc:
        raise translate(exc, where) from None
    try:
        if purpose == "build":  # a killed build's statement stops within a second
            conn.execute(f"set client_connection_check_interval = '{CHECK_INTERVAL}'")
        if vector:
            from pgvector.psycopg import register_vector

            register_vector(conn)
    except psycopg.Error as exc:
        conn.close()
        raise translate(exc, where) from None
    return conn


class Pool:
    """Idle connections for searches, shared by threads.

    Args:
        conninfo: what libpq connects with.
        where: the password-free location, for messages.
    """

    def __init__(self, conninfo: str, where: str) -> None:
        self._conninfo, self.where = conninfo, where
        self._idle: list = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Pool({self.where!r})"

    @contextmanager
    def connection(self) -> Iterator:
        """A connection for the block; back to the pool afterwards unless it broke."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = connect(self._conninfo, self.where)
        try:
            yield conn
        finally:
            self._give_back(conn)

    def _give_back(self, conn) -> None:
        from psycopg.pq import TransactionStatus

        healthy = not conn.closed and not conn.broken and (
            conn.info.transaction_status == TransactionStatus.IDLE
        )  # fmt: skip
        with self._lock:
            if healthy and len(self._idle) < IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def run(self, work: Callable[[object], T]) -> T:
        """`work(connection)`, once more on a new connection if the first one had broken.

        Raises:
            psycopg.Error: what `work` raised (translate it with `faults.translate`).
        """
        try:
            with self.connection() as conn:
                return work(conn)
        except Exception as exc:
            if not is_lost(exc):
                raise
            self.clear()  # the server went away: every idle connection is dead too
        with self.connection() as conn:
            return work(conn)

    def clear(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
