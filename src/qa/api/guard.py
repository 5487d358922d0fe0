"""Who may ask, and how much: the bearer token, the binding policy, the request body limit.

- `check_binding`: `qa serve` binds to the loopback interface by default; any other address
  needs a token ($QA_API_TOKEN) or an explicit `--no-auth`, which warns.
- `token_matches`: `Authorization: Bearer <token>` compared in constant time.
- `is_json`: whether a Content-Type declares JSON.
- `BodyLimit`: an ASGI middleware that refuses request bodies over a size, whether announced
  by Content-Length or streamed in chunks, with 413 and a JSON error.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from email.message import Message

from qa.errors import UsageError

MAX_BODY_BYTES = 64 * 1024  # a question of 2,000 characters is at most 8 KiB of UTF-8
TOKEN_VARIABLE = "QA_API_TOKEN"
LOOPBACK_NAMES = ("localhost",)


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


def token_matches(authorization: str | None, token: str) -> bool:
    """Whether an `Authorization` header carries `Bearer <token>` (constant-time compare)."""
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def is_json(content_type: str) -> bool:
    """Whether a Content-Type header declares JSON (`application/json`, any parameters)."""
    message = Message()
    message["content-type"] = content_type
    return message.get_content_type() == "application/json"


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
        payload = json.dumps(
            {
                "error": f"the request body is larger than {self.limit} bytes",
                "hint": "send one question of at most a few thousand characters per request",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
