"""Start the API on uvicorn: `qa serve [--index I] [--host H] [--port P] [--workers N]`.

With one worker the app is built here, so a missing or unusable index is one error line before
anything listens. With N workers uvicorn starts N processes, each loading the model and the index
once (`app.create_app_from_env`, configured through the environment); the index and the settings
are checked here first all the same. uvicorn speaks HTTP through `connections.GuardedProtocol`
(request deadlines, a cap on open connections).
"""

from __future__ import annotations

import logging
import os
import socket
import sys

from qa.api import guard
from qa.errors import QAError, UsageError, install_hint

MAX_WORKERS = 64


def serve(
    index: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    no_auth: bool = False,
    cors_origins: list[str] | tuple[str, ...] = (),
    access_log: bool = False,
    allowed_hosts: list[str] | tuple[str, ...] = (),
) -> int:
    """Serve the index until interrupted; returns the exit status.

    `allowed_hosts`: names a request's Host header may give besides this machine's loopback
    names and IP addresses (default: $QA_API_ALLOWED_HOSTS; see `guard.allowed_hosts`).

    Raises:
        UsageError: bad port or worker count; a non-loopback host without a token or --no-auth;
            a bad host name or $QA_API_* setting.
        QAError: the API extra is not installed; no index, or one that cannot be searched.
    """
    try:
        import uvicorn

        from qa.api import connections
        from qa.api.app import (
            CORS_VARIABLE,
            WORKERS_VARIABLE,
            cors_from_env,
            create_app,
            health_max_age,
            warm_up,
        )
    except ImportError as exc:
        raise QAError(
            f"`qa serve` needs FastAPI and uvicorn ({exc})",
            install_hint("api"),
        ) from exc
    from qa.retrieve.searcher import Searcher

    if not 1 <= port <= 65535:
        raise UsageError(f"--port must be between 1 and 65535, not {port}", "e.g. --port 8000")
    if not 1 <= workers <= MAX_WORKERS:
        raise UsageError(
            f"--workers must be between 1 and {MAX_WORKERS}, not {workers}",
            "one per core is plenty",
        )
    host = host.strip("[]")  # [::1] as in a URL
    token = os.environ.get(guard.TOKEN_VARIABLE) or None
    origins = list(cors_origins) or cors_from_env()
    warning = guard.check_binding(host, token, no_auth)
    hosts = guard.allowed_hosts(token, list(allowed_hosts) or guard.hosts_from_env(), host)
    connections.configure_from_env()
    max_age = health_max_age()
    check_port(host, port)
    if warning:
        print(f"qa: warning: {warning}", file=sys.stderr, flush=True)
    searcher = Searcher(index)  # fails here, in one line, on a missing or unusable index
    where = f"[{host}]" if ":" in host else host
    print(
        f"qa: serving {searcher.store.location} on http://{where}:{port} "
        f"(API documentation at /docs)",
        file=sys.stderr,
        flush=True,
    )
    options = {"host": host, "port": port, "log_level": "info", "access_log": access_log,
               "http": connections.GuardedProtocol, "ws": "none"}  # fmt: skip
    if workers == 1:
        warm_up(searcher)
        app = create_app(searcher, token, origins, allowed_hosts=hosts, health_max_age=max_age)
        uvicorn.run(app, **options)
        return 0
    del searcher  # each worker loads its own
    if index is not None:
        os.environ["QA_INDEX"] = str(index)
    os.environ[CORS_VARIABLE] = ",".join(origins)
    os.environ[guard.HOSTS_VARIABLE] = guard.ANY_HOST if hosts is None else ",".join(sorted(hosts))
    os.environ[WORKERS_VARIABLE] = str(workers)
    if logging.getLogger().isEnabledFor(logging.DEBUG):  # `qa --debug serve`: the workers too
        os.environ["QA_DEBUG"] = "1"
    uvicorn.run("qa.api.app:create_app_from_env", factory=True, workers=workers, **options)
    return 0


def check_port(host: str, port: int) -> None:
    """Fail in one line, before loading anything, when the address cannot be listened on.

    Raises:
        QAError: the port is taken, or the host is not an address of this machine.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            probe.bind(address)
    except OSError as exc:
        raise QAError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            "another program may use the port: pick another with --port, or check --host",
        ) from None
