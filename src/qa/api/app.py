"""The FastAPI application of `qa serve`: `POST /ask`, `GET /documents`, `GET /health`.

One `Searcher` per process answers every request (it is thread-safe; FastAPI runs the handlers
in its thread pool). Before each request the searcher switches to a newer build if one went
live (`Searcher.refresh`, cheap when nothing changed), as the page does, so a rebuilt index
is picked up without a restart; each answer comes wholly from one build.

Errors are JSON, `{"error": message, "hint": hint}`, never a traceback: bad input is 4xx, a
problem with the index (a `QAError`) 503.

`/health` says whether the index is stale from a check of the corpus at most
`health_max_age` seconds old ($QA_API_HEALTH_MAX_AGE, default 5): one walk of the corpus
serves every health probe meanwhile (`staleness.RecentCheck`).

The API's documentation pages (/docs, /redoc) load their scripts and styles from this server
(`fastapi-offline` ships them), not from a CDN: `qa` runs where nothing else can be reached.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException

from qa import __version__, config
from qa.api import guard
from qa.api.fastpath import AskFastPath, search_on_loop
from qa.api.rebalance import Rebalance
from qa.api.schema import (
    MAX_QUESTION_CHARS,
    AnswerModel,
    AskRequest,
    DocumentsModel,
    ErrorModel,
    HealthModel,
)
from qa.errors import QAError, UsageError
from qa.retrieve.searcher import MAX_K, Searcher
from qa.staleness import RecentCheck
from qa.terminal import configure_logging, json_text

log = logging.getLogger("qa.api")

CORS_VARIABLE = "QA_API_CORS"
WORKERS_VARIABLE = "QA_API_WORKERS"  # set by `qa serve` for its worker processes
HEALTH_VARIABLE = "QA_API_HEALTH_MAX_AGE"
HEALTH_MAX_AGE_S = 5.0  # /health's staleness is at most this old
FIELD_HINTS = {
    "question": "send a question in plain words, e.g. \"What causes back pain?\"",
    "k": f"k is how many passages to return: a whole number from 1 to {MAX_K}",
    "mode": "mode is one of: dense, lexical, hybrid (the default)",
    "doc": 'doc is a glob such as "*.pdf", a list of globs, or null',
}
BEARER = HTTPBearer(auto_error=False, description="the server's $QA_API_TOKEN")  # for /docs
BODY_HINT = 'send a JSON object such as {"question": "What causes back pain?", "k": 3}'


class APIError(Exception):
    """An error answered as `{"error": message, "hint": hint}` with an HTTP status."""

    def __init__(self, status: int, message: str, hint: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.hint, self.headers = status, message, hint, headers


class Service:
    """The process's searcher, switched to a newer build before each request when one is live.

    A newer build that cannot be loaded (damaged, another model) is logged once and skipped:
    answers go on from the build already loaded, and `/health` says why.
    """

    def __init__(self, searcher: Searcher) -> None:
        self.searcher = searcher
        self.refresh_error: str | None = None
        self._failed: str | None = None  # the live build that could not be loaded
        self._lock = threading.Lock()

    def settled(self) -> bool:
        """Whether the searcher answers from the live build already: no build to load first
        (a link read; a live build that failed to load counts as settled)."""
        return self._to_load() is None

    def fresh(self) -> Searcher:
        """The searcher, on the live build when it can be loaded."""
        searcher = self.searcher
        live = self._to_load()
        if live is None:
            return searcher
        try:
            searcher.refresh()
        except (QAError, OSError) as exc:
            self._failed = live
            self._note(f"keeping build {searcher.generation.id}: cannot load {live}: {exc}")
        else:
            self.refresh_error = None
        return searcher

    def _to_load(self) -> str | None:
        """The live build when it is one to load (newer, and not one that failed to load)."""
        try:
            live = self.searcher.store.current()
        except (QAError, OSError) as exc:
            self._note(f"cannot read the live build: {exc}")  # answers go on from what it has
            return None
        if live is None or live in (self.searcher.generation.id, self._failed):
            return None
        return live

    def _note(self, problem: str) -> None:
        """Remember a refresh problem for /health; log it once, not on every request."""
        with self._lock:
            if problem != self.refresh_error:
                log.warning("%s", problem)
            self.refresh_error = problem


def create_app(
    searcher: Searcher,
    token: str | None = None,
    cors_origins: list[str] | tuple[str, ...] = (),
    max_body: int = guard.MAX_BODY_BYTES,
    fast_path: bool = True,
    workers: int = 1,
    allowed_hosts: frozenset[str] | None = None,
    health_max_age: float = HEALTH_MAX_AGE_S,
) -> FastAPI:
    """The API over one searcher.

    Args:
        searcher: answers the questions (its index is followed to newer builds).
        token: when set, /ask and /documents need `Authorization: Bearer <token>`.
        cors_origins: browser origins allowed to call the API (none: no CORS headers at all).
        max_body: request bodies over this many bytes get 413.
        fast_path: answer well-formed `POST /ask` requests past FastAPI's routing
            (`qa.api.fastpath`; the same answers, about 1 ms less CPU each).
        workers: how many processes serve (`qa serve --workers`): with one per core, the fast
            path searches on the event loop instead of in a thread (`fastpath.search_on_loop`);
            with more than one, connections are handed back now and then so that the workers
            share the clients (`qa.api.rebalance`).
        allowed_hosts: the names a request's Host header may give (`guard.allowed_hosts`;
            None: any).
        health_max_age: how old, in seconds, the staleness `/health` reports may be.
    """
    service = Service(searcher)
    staleness = RecentCheck(searcher.store, health_max_age)
    app = FastAPIOffline(
        title="qa",
        version=__version__,
        description="Ask questions of a folder of documents; get back the passages "
        "that answer. The same answers, and the same JSON, as `qa ask --json`.",
        responses={422: {"model": ErrorModel}, 503: {"model": ErrorModel}},
    )

    async def authorized(
        request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
    ) -> None:
        """Refuse a request without the token (when one is set); `BEARER` documents it."""
        if token and not guard.token_matches(request.headers.get("authorization"), token):
            raise APIError(
                401,
                "missing or wrong bearer token",
                "send `Authorization: Bearer <token>` with the server's QA_API_TOKEN",
                {"WWW-Authenticate": "Bearer"},
            )

    async def json_body(request: Request) -> None:
        """Refuse a body that is not declared as JSON (before it is parsed)."""
        if not guard.is_json(request.headers.get("content-type", "")):
            raise APIError(
                415,
                "the request body must be JSON",
                "send the header `Content-Type: application/json` (curl: --json '{...}')",
            )

    @app.post(
        "/ask",
        response_model=AnswerModel,
        dependencies=[Depends(authorized), Depends(json_body)],
        responses={401: {"model": ErrorModel}},
    )
    def ask(request: AskRequest) -> Response:
        """The passages that best answer the question: the object `qa ask --json` prints."""
        return Response(answer_json(request), media_type="application/json")

    def answer_json(request: AskRequest) -> bytes:
        """The answer as JSON: built once, as the CLI prints it (AnswerModel documents it; the
        tests hold it to it)."""
        answer = service.fresh().ask(request.question, request.k, request.mode, request.doc)
        return json_bytes(answer.to_json(request.question[:MAX_QUESTION_CHARS]))  # as qa ask

    @app.get(
        "/documents",
        response_model=DocumentsModel,
        dependencies=[Depends(authorized)],
        responses={401: {"model": ErrorModel}},
    )
    def documents() -> dict:
        """The indexed documents: path, title, kind, pages (PDFs) and passages."""
        searcher = service.fresh()
        generation = searcher.generation  # one build for both fields
        return {"generation": generation.id, "documents": searcher.documents(generation.manifest)}

    @app.api_route("/health", methods=["GET", "HEAD"], response_model=HealthModel)
    def health() -> dict:
        """Whether the server answers, from which build, and whether that build is stale
        (HEAD too: some load balancers check with it)."""
        searcher = service.fresh()
        generation = searcher.generation
        manifest = generation.manifest
        try:
            recent = staleness.check(generation.id)
            stale, checked = recent.stale, recent.checked
        except QAError:
            stale, checked = False, False
        return {
            "status": "ok",
            "generation": generation.id,
            "built_at": manifest["built_at"],
            "model": manifest["model"]["id"],
            "backend": manifest["model"].get("backend", "torch"),
            "documents": len(manifest["documents"]),
            "chunks": manifest["chunks"],
            "stale": stale,
            "stale_checked": checked,
            "refresh_error": service.refresh_error,
        }

    _add_error_handlers(app)
    if fast_path:  # (innermost: under the body limit and CORS, as the route is)
        on_loop = search_on_loop(searcher.store.shared, workers)
        app.add_middleware(AskFastPath, answer=answer_json, token=token,
                           on_loop=service.settled if on_loop else None)  # fmt: skip
    app.add_middleware(guard.BodyLimit, limit=max_body)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(guard.HostCheck, allowed=allowed_hosts)  # before anything reads it
    if workers > 1:  # outermost: every response of a connection counts
        app.add_middleware(Rebalance)
    return app


def json_bytes(payload: dict) -> bytes:
    """`payload` as JSON, as it is (`Answer.to_json()` is already what the schema says), and
    in the encoding `qa ask --json` prints it (`terminal.json_text`): the same bytes."""
    return json_text(payload).encode("utf-8")


def error(status: int, message: str, hint: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "hint": hint}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return error(exc.status, exc.message, exc.hint, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(*describe(exc.errors()))

    @app.exception_handler(UsageError)
    async def usage(request: Request, exc: UsageError) -> JSONResponse:
        return error(422, exc.message, exc.hint)

    @app.exception_handler(QAError)
    async def index_error(request: Request, exc: QAError) -> JSONResponse:
        log.error("index error: %s", exc)
        return error(503, exc.message, exc.hint or "check the index with `qa info`")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not read the body (e.g. not UTF-8)
            return error(400, "the request body is not valid JSON (UTF-8 text)", BODY_HINT)
        hint = {
            404: "the API has POST /ask, GET /documents, GET /health; see /docs",
            405: "see /docs for the methods each path takes",
        }
        return error(
            exc.status_code,
            str(exc.detail),
            hint.get(exc.status_code, "see /docs"),
            getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        return error(
            500,
            f"unexpected {exc.__class__.__name__}",
            "the server log has the details; please report it",
        )


def describe(errors) -> tuple[int, str, str]:
    """Status, message and hint for pydantic's validation errors (the first one is told)."""
    first = dict(errors[0]) if errors else {"loc": ("body",), "msg": "invalid request"}
    loc = [str(part) for part in first.get("loc", ())[1:]]  # after "body" (or "query"...)
    if first.get("type") == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "")
        return 400, f"the request body is not valid JSON: {reason}".rstrip(": "), BODY_HINT
    field = loc[0] if loc else ""
    if first.get("type") == "extra_forbidden":
        return 422, f"unknown field {field!r}", BODY_HINT
    if not field or first.get("type") == "model_attributes_type":
        return 422, f"the request body must be a JSON object: {first.get('msg', '')}", BODY_HINT
    return 422, f"{field}: {first.get('msg', 'invalid')}", FIELD_HINTS.get(field, BODY_HINT)


def create_app_from_env() -> FastAPI:
    """The app for uvicorn workers (`qa serve --workers N`), configured by the environment:
    $QA_INDEX (and $QA_MODEL, $QA_RERANKER as for `qa ask`), $QA_API_TOKEN, $QA_API_CORS
    (comma-separated origins), $QA_API_ALLOWED_HOSTS (comma-separated names),
    $QA_API_HEALTH_MAX_AGE, $QA_API_WORKERS (how many processes `qa serve` started)."""
    configure_logging(config.debug())  # as `qa serve`'s own process
    from qa.api import connections

    connections.configure_from_env()
    searcher = Searcher(os.environ.get("QA_INDEX"))
    warm_up(searcher)
    workers = os.environ.get(WORKERS_VARIABLE, "")
    workers = int(workers) if workers.isdigit() else 1
    token = os.environ.get(guard.TOKEN_VARIABLE) or None
    return create_app(searcher, token, cors_from_env(), workers=workers,
                      allowed_hosts=guard.allowed_hosts(token, guard.hosts_from_env()),
                      health_max_age=health_max_age())  # fmt: skip


def health_max_age() -> float:
    """$QA_API_HEALTH_MAX_AGE: how old /health's staleness may be, in seconds (default 5).

    Raises:
        UsageError: not a number >= 0.
    """
    return guard.number_from_env(HEALTH_VARIABLE, HEALTH_MAX_AGE_S, minimum=0.0)


def cors_from_env() -> list[str]:
    """The origins in $QA_API_CORS (comma-separated; empty: no CORS)."""
    return [o.strip() for o in os.environ.get(CORS_VARIABLE, "").split(",") if o.strip()]


def warm_up(searcher: Searcher) -> None:
    """One question before serving, so the first client does not wait for lazy loading."""
    searcher.ask("warm up", k=1)
