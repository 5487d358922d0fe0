"""How long a request may take to arrive, and how many connections may be open at once.

uvicorn times out only an idle keep-alive connection: a client that connects and sends
nothing, or half a request line, headers or body, held its connection (and a file descriptor)
for ever, and a thousand such clients left `qa serve` no descriptor to accept a question with.
`GuardedProtocol` is uvicorn's own HTTP protocol (httptools) with two limits added:

- **A request must arrive whole within `request_timeout` seconds** ($QA_API_REQUEST_TIMEOUT,
  default 10), counted from the connection (for its first request) or from the request's first
  byte: request line, headers and body. Then the connection is closed, after a 408 and a JSON
  error when part of a request had come. A request being answered is never cut.
- **At most `max_connections` connections are open** ($QA_API_MAX_CONNECTIONS; default: the
  process's file limit, `ulimit -n`, less `RESERVED_FILES`, and at most `MAX_CONNECTIONS`). A
  connection beyond it closes the one that has waited longest for a whole request (idle,
  or half sent); only when every open connection has a request being answered is the new one
  refused (503). So clients that hang cannot keep a question from being answered.

Both hold per process (`qa serve --workers N`: in each worker).
"""

from __future__ import annotations

import json
import resource
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from qa.api import guard

TIMEOUT_VARIABLE = "QA_API_REQUEST_TIMEOUT"
CONNECTIONS_VARIABLE = "QA_API_MAX_CONNECTIONS"
REQUEST_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 4096
RESERVED_FILES = 128  # descriptors kept for the index, the model, logs and a new build's files


def default_max_connections() -> int:
    """The file limit less `RESERVED_FILES` (at least 16), at most `MAX_CONNECTIONS`."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(16, min(MAX_CONNECTIONS, soft - RESERVED_FILES))


def configure_from_env() -> None:
    """Set `GuardedProtocol`'s limits from the environment (or their defaults).

    Raises:
        UsageError: a setting that is not a number, or too small.
    """
    GuardedProtocol.request_timeout = guard.number_from_env(TIMEOUT_VARIABLE, REQUEST_TIMEOUT_S,
                                                            minimum=0.1)  # fmt: skip
    GuardedProtocol.max_connections = int(guard.number_from_env(
        CONNECTIONS_VARIABLE, default_max_connections(), minimum=1))  # fmt: skip


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol with a deadline for each request to arrive and a cap on open
    connections (see the module text)."""

    request_timeout: ClassVar[float] = REQUEST_TIMEOUT_S
    max_connections: ClassVar[int] = MAX_CONNECTIONS
    # this process's connections waiting for a whole request, longest waiting first
    waiting: ClassVar[dict[GuardedProtocol, None]] = {}

    def connection_made(self, transport) -> None:  # noqa: ANN001 - asyncio's signature
        super().connection_made(transport)
        self._deadline = None
        self._begun = False  # part of a request has come
        if len(self.connections) > self.max_connections and not self._evict():
            self._close(503, "the server has too many connections open",
                        "try again in a moment")  # fmt: skip
            return
        self._wait()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._begun = True
        self._wait()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._begun = False
        self._stop_waiting()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # idle between requests: may give way
            self.waiting.setdefault(self, None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _wait(self) -> None:
        """Start the clock for a request to arrive (unless it runs already)."""
        self.waiting.setdefault(self, None)
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.request_timeout, self._expire)

    def _stop_waiting(self) -> None:
        self.waiting.pop(self, None)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        """Close a connection whose request did not arrive in time (408 if part of it came)."""
        self._deadline = None
        if self._begun:
            self._close(408, f"the request did not arrive within {self.request_timeout:g} s",
                        "send the whole request at once")  # fmt: skip
        else:
            self._close()

    def _evict(self) -> bool:
        """Close the connection that has waited longest for a request; False if none waits."""
        for other in self.waiting:
            if other is not self:
                other._expire()
                return True
        return False

    def _close(self, status: int | None = None, error: str = "", hint: str = "") -> None:
        """Close the connection, first answering `status` with a JSON error unless a response
        is under way on it (the app, if it has the request, sees the client gone)."""
        self._stop_waiting()
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started:
                status = None
            cycle.disconnected = True  # the app's `receive` says so; what it sends is dropped
            cycle.message_event.set()
        if status is not None:
            body = json.dumps({"error": error, "hint": hint}).encode()
            self.transport.write(b"".join([
                STATUS_LINE[status], b"content-type: application/json\r\n",
                b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body), body]))  # fmt: skip
        self.transport.close()
