"""PostgreSQL errors as qa errors: one line that says what went wrong, and a hint.

psycopg gives no SQLSTATE for failures while connecting, so those are told apart by their text.
Only `str(exc)` is ever read, and the result is redacted once more: the exception's `pgconn`
(and the connection's `info`) hold the password and are never looked at.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from qa.errors import IndexCorruptError, QAError
from qa.store.postgres.url import redact

LOST = (
    "connection refused", "no such file or directory", "could not connect", "failed to resolve",
    "could not translate host", "timeout expired", "server closed the connection",
    "terminating connection", "the connection is closed", "connection is lost",
    "consuming input failed", "connection is bad", "network is unreachable", "no route to host",
    "the database system is shutting down", "the database system is starting up",
    "could not receive data", "could not send data", "ssl syscall error",
)  # fmt: skip
UNREACHABLE_HINT = ("check that the server is running and that host and port are right; "
                    "qa connects again on the next try")  # fmt: skip
class NoVectorExtension(QAError):
    """The database has no pgvector extension (yet: a build creates it where it may)."""


VECTOR_HINT = ("install pgvector on the server and run `CREATE EXTENSION vector` in that "
               "database as a superuser (or a role allowed to create extensions)")  # fmt: skip


def reason(exc: BaseException) -> str:
    """The gist of a psycopg error: its first line, without libpq's connection preamble."""
    line = redact(str(exc)).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    for prefix in ("connection failed: ", "connection is bad: "):
        line = line.removeprefix(prefix)
    if " failed: " in line and line.startswith("connection to server"):
        line = line.rsplit(" failed: ", 1)[1]
    return line.replace("FATAL:  ", "").strip()


def translate(exc: BaseException, where: str) -> QAError:
    """The qa error for a psycopg error at index location `where` (already password-free)."""
    import psycopg

    text = str(exc).lower()
    gist = reason(exc)
    if "password authentication failed" in text or "no password supplied" in text or (
        "authentication failed" in text
    ):
        return QAError(f"cannot log in to PostgreSQL at {where}: {gist}",
                       "check the user name and password (in the URL, PGPASSWORD or ~/.pgpass)")
    if "does not exist" in text and "database" in text and "relation" not in text:
        return QAError(f"no database at {where}: {gist}",
                       "create it (createdb NAME) or fix the database name in the URL")
    if "vector type not found" in text or 'type "vector" does not exist' in text or (
        isinstance(exc, psycopg.errors.InsufficientPrivilege) and "extension" in text
    ):
        return NoVectorExtension(f"the PostgreSQL database at {where} lacks the pgvector "
                                 f"extension ({gist})", VECTOR_HINT)  # fmt: skip
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return QAError(f"PostgreSQL at {where} refused: {gist}",
                       "grant this user the rights qa needs (CREATE on the database to build, "
                       "USAGE and SELECT on the qa schemas to search)")
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return QAError(f"PostgreSQL at {where} cancelled a query: {gist}",
                       "try again; if it keeps happening, raise statement_timeout")
    if isinstance(exc, psycopg.OperationalError) and any(s in text for s in LOST):
        return QAError(f"cannot reach PostgreSQL at {where}: {gist}", UNREACHABLE_HINT)
    if isinstance(exc, (psycopg.errors.UndefinedColumn, psycopg.errors.UndefinedFunction)):
        return IndexCorruptError(f"the index at {where} was written by another version of qa "
                                 f"({gist})", "rebuild it with `qa build`, or use that version")
    return QAError(f"PostgreSQL error at {where}: {gist}",
                   "run again with --debug for details")  # fmt: skip


def is_lost(exc: BaseException) -> bool:
    """Whether an error means the connection broke (worth one retry on a new connection)."""
    import psycopg

    return isinstance(exc, psycopg.OperationalError) and not isinstance(
        exc, psycopg.errors.QueryCanceled
    ) and any(s in str(exc).lower() for s in LOST)  # fmt: skip


@contextmanager
def translated(where: str) -> Iterator[None]:
    """Turn psycopg errors raised in the block into qa errors (the original is not chained,
    so nothing of the connection reaches a traceback)."""
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        raise translate(exc, where) from None
