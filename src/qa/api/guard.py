"""Who may ask, and how much: the bearer token, the binding policy, the Host rule, the request
body limit.

- `check_binding`: `qa serve` binds to the loopback interface by default; any other address
  needs a token ($QA_API_TOKEN) or an explicit `--no-auth`, which warns.
- `token_matches`: `Authorization: Bearer <token>` compared in constant time.
- `allowed_hosts`, `HostCheck`: without a token, only requests whose `Host` header names this
  machine's loopback (localhost, 127.0.0.1, [::1]), an IP address, the host served on or a
  name the user allows are answered; others get 400. A web page whose domain an attacker
  points at 127.0.0.1 (DNS rebinding) sends its own domain as the Host, so it cannot read a
  tokenless API on localhost. With a token any Host is answered (such a page does not have
  the token) unless names are configured.
- `is_json`: whether a Content-Type declares JSON.
- `BodyLimit`: an ASGI middleware that refuses request bodies over a size, whether announced
  by Content-Length or streamed in chunks, with 413 and a JSON error.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
from email.message import Message

from qa.errors import UsageError

MAX_BODY_BYTES = 64 * 1024  # a question of 2,000 characters is at most 8 KiB of UTF-8
TOKEN_VARIABLE = "QA_API_TOKEN"
HOSTS_VARIABLE = "QA_API_ALLOWED_HOSTS"
LOOPBACK_NAMES = ("localhost",)
ANY_HOST = "*"


def is_loopback(host: str) -> bool:
    """Whether `host` is only reachable from this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_binding(host: str, token: str | None, no_auth: bool) -> str | None:
    """Whether the server may listen on `host`; returns a warning to show, or None.

    Raises:
        UsageError: a non-loopback host without a token or --no-auth; both a token and
            --no-auth; a token that cannot travel in an HTTP header as it is.
    """
    if token and not (token.isascii() and token.isprintable() and " " not in token):
        raise UsageError(
            f"${TOKEN_VARIABLE} must be printable ASCII without spaces",
            "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
        )
    if no_auth and token:
        raise UsageError(
            f"--no-auth given while ${TOKEN_VARIABLE} is set",
            f"unset {TOKEN_VARIABLE} to serve without a token, or drop --no-auth",
        )
    if is_loopback(host) or token:
        return None
    if not no_auth:
        raise UsageError(
            f"serving on {host} needs a token: anyone who can reach it could query the index",
            f"set {TOKEN_VARIABLE} (clients send `Authorization: Bearer <token>`), "
            "or pass --no-auth to serve without one",
        )
    return (
        f"serving on {host} without a token (--no-auth): anyone who can reach it can "
        "query the index"
    )


def number_from_env(name: str, default: float, minimum: float) -> float:
    """A number setting from the environment: $`name`, else `default`.

    Raises:
        UsageError: not a number, or under `minimum`.
    """
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = float("nan")
    if not minimum <= value < float("inf"):
        raise UsageError(f"${name} must be a number of at least {minimum:g}, not {raw!r}",
                         f"unset it for the default ({default:g})")
    return value


def token_matches(authorization: str | None, token: str) -> bool:
    """Whether an `Authorization` header carries `Bearer <token>` (constant-time compare)."""
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def host_name(host: str) -> str:
    """The name in a Host header or `--allowed-host` value: no port, no brackets, lower case,
    no final dot ("[::1]:8000" -> "::1", "LocalHost.:8000" -> "localhost")."""
    host = host.strip().lower()
    if host.startswith("["):  # an IPv6 address, maybe with a port
        return host[1:].partition("]")[0]
    if host.count(":") == 1:  # a name or IPv4 address with a port
        host = host.partition(":")[0]
    return host.rstrip(".")


def is_address(name: str) -> bool:
    """Whether a host name is an IP address (one that no DNS answer can point elsewhere)."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def allowed_hosts(token: str | None, configured: list[str] | tuple[str, ...] = (),
                  served_on: str = "") -> frozenset[str] | None:  # fmt: skip
    """The names a request's Host header may give (IP addresses are always allowed), or None
    for any: with a token and no names configured, or when `*` is configured.

    Args:
        token: the server's bearer token, if any.
        configured: names the user allows (`--allowed-host`, $QA_API_ALLOWED_HOSTS); a port
            given with a name is ignored.
        served_on: the host the server listens on (allowed too: the user chose it).

    Raises:
        UsageError: a configured name that cannot be a host name.
    """
    names = []
    for given in configured:
        name = host_name(given)
        if name != ANY_HOST and not (name and all(c.isalnum() or c in "-._:[]" for c in given)):
            raise UsageError(f"allowed host {given!r} is not a host name (--allowed-host, "
                             f"${HOSTS_VARIABLE})",
                             "give the name clients use, e.g. --allowed-host qa.example.org")
        names.append(name)
    if ANY_HOST in names or (token and not names):
        return None
    return frozenset([*LOOPBACK_NAMES, *names, host_name(served_on)]) - {""}


def hosts_from_env() -> list[str]:
    """The host names in $QA_API_ALLOWED_HOSTS (comma-separated)."""
    return [h.strip() for h in os.environ.get(HOSTS_VARIABLE, "").split(",") if h.strip()]


def host_allowed(host: str | None, allowed: frozenset[str] | None) -> bool:
    """Whether a request with this Host header (None: none sent) may be answered."""
    if allowed is None or host is None:  # (a browser always sends one)
        return True
    name = host_name(host)
    return name in allowed or is_address(name)


def is_json(content_type: str) -> bool:
    """Whether a Content-Type header declares JSON (`application/json`, any parameters)."""
    message = Message()
    message["content-type"] = content_type
    return message.get_content_type() == "application/json"


class HostCheck:
    """ASGI middleware: a request whose Host header is not allowed (`host_allowed`) gets 400
    and a JSON error, before anything else reads it."""

    def __init__(self, app, allowed: frozenset[str] | None) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope, receive, send) -> None:
        hosts = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"]
        if scope["type"] != "http" or all(host_allowed(h, self.allowed) for h in hosts):
            await self.app(scope, receive, send)
            return
        shown = json.dumps(hosts[0][:100])
        await send_json(send, 400, {
            "error": f"this server does not answer for the host {shown} (the Host header)",
            "hint": "call it as localhost or 127.0.0.1, or let clients use that name: "
                    f"qa serve --allowed-host NAME (or ${HOSTS_VARIABLE})",
        })  # fmt: skip


async def send_json(send, status: int, payload: dict) -> None:
    """Answer with a JSON body and close the connection (an ASGI response in two messages)."""
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: request bodies over `limit` bytes get 413 before the app sees them.

    The body is read here (it is small by definition) and handed on whole, so a client that
    streams more than announced, or announces nothing, is stopped at the limit too. (FastAPI's
    own `max_body_size` answers an announced over-long body in plain text, not JSON.)
    """

    def __init__(self, app, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await self._refuse(send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await self._refuse(send)
                return
            more = message.get("more_body", False)
        body = b"".join(chunks)
        delivered = False

        async def replay():
            nonlocal delivered
            if delivered:
                return await receive()  # after the body: disconnect notices
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send) -> None:
        await send_json(send, 413, {
            "error": f"the request body is larger than {self.limit} bytes",
            "hint": "send one question of at most a few thousand characters per request",
        })  # fmt: skip
