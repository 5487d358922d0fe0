"""The fast path of `POST /ask`: a request in good order answered without FastAPI's routing.

FastAPI's routing, dependency solving and request parsing cost about 1 ms of CPU per request
here: `qa serve` spent 6.3 ms per answer where a bare ASGI app around the same searcher spent
5.2 ms (docs/performance.md). So an ASGI layer under the app's own middleware (the body limit,
CORS) answers `POST /ask` itself when everything about the request is in order: the token
(when one is set), a JSON content type, a body that FastAPI's own parsing (`json.loads`) and
the same `AskRequest` model accept, and a search that succeeds. Anything else (a bad token, a
bad body, a question the searcher refuses, an error) goes on, body and all, to the FastAPI
route, which answers it exactly as before: the fast path decides nothing on its own. Its answer
is the route's, byte for byte and header for header (`tests/test_serve.py` compares them).

Where the search runs: on the worker's event loop when `on_loop` (a process per core and a
store searched in this process: one search at a time per process, no thread hop, and no second
search thread contending for the interpreter's lock: 0.78x-0.81x of the floor at 4 clients
against 0.66x-0.67x in threads, docs/performance.md); in a thread otherwise (one process on
several cores, where threads overlap the parts that release the lock, or a database store,
whose searches wait on the server).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from anyio import to_thread
from pydantic import ValidationError

from qa.api import guard
from qa.api.schema import AskRequest

PATH = "/ask"


class AskFastPath:
    """ASGI middleware: answers a well-formed, authorised `POST /ask` with `answer(request)`
    (the JSON bytes of the route's answer), and hands every other request to `app`.

    `on_loop`: None to search in a thread; else a check, made before each search, that the
    search may run on the event loop (see the module text): it says no while a newer build
    waits to be loaded, so that the load (seconds, for a large index) happens in a thread and
    the worker's other requests, health checks included, are not held up by it."""

    def __init__(self, app, answer: Callable[[AskRequest], bytes], token: str | None,
                 on_loop: Callable[[], bool] | None = None) -> None:  # fmt: skip
        self.app = app
        self.answer = answer
        self.token = token
        self.on_loop = on_loop

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        headers = {}
        for name, value in scope["headers"]:
            if name in (b"authorization", b"content-type"):
                headers.setdefault(name, value.decode("latin-1"))
        authorised = not self.token or guard.token_matches(headers.get(b"authorization"),
                                                          self.token)  # fmt: skip
        if not authorised or not guard.is_json(headers.get(b"content-type", "")):
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        payload = await self._answer(body)
        if payload is None:  # not in good order: the route answers it, as it always did
            await self.app(scope, _replay(body, receive), send)
            return
        await send({
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(payload)).encode()),
                        (b"content-type", b"application/json")],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": payload})

    async def _answer(self, body: bytes) -> bytes | None:
        """The answer's JSON, or None when the request is not in good order."""
        try:
            request = AskRequest.model_validate(json.loads(body))
        except (ValueError, ValidationError, RecursionError):  # (JSONDecodeError, too deep...)
            return None
        try:
            if self.on_loop is not None and self.on_loop():
                return self.answer(request)
            return await to_thread.run_sync(self.answer, request)
        except Exception:  # noqa: BLE001 - the route answers it again, with its error
            return None


def search_on_loop(shared_store: bool, workers: int) -> bool:
    """Whether the fast path should search on the event loop: a store searched in this process
    (not a shared database) and at least one worker process per usable core."""
    return not shared_store and workers >= usable_cores()


def usable_cores() -> int:
    """The cores this process may run on (all of the machine's where the OS cannot say)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _replay(body: bytes, receive):
    """A `receive` that gives the body already read, then whatever the client sends."""
    delivered = False

    async def replay():
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
