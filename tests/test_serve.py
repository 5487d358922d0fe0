"""`qa serve`, the HTTP JSON API, tested against a real uvicorn process (`qa serve --workers 2`
on a free port, one for this module) over an index of the shipped report.

The order of the tests matters at the end only: the last two rebuild the module's index.
"""

from __future__ import annotations

import io
import json
import os
import random
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import REPORT, ROOT, report_questions
from test_concurrency import two_hundred_questions

from qa import config
from qa.api import guard
from qa.api.schema import MAX_QUESTION_CHARS, AnswerModel, ErrorModel
from qa.build import build_index
from qa.cli import main
from qa.errors import UsageError

TOKEN = "s3cret-token-for-the-tests"
ORIGIN = "https://chat.example.org"
CLIENTS = 16
REQUESTS_PER_CLIENT = 200  # the 16 clients x 200 requests (about 25 s here)
STARTUP_S = 180


@dataclass
class Server:
    url: str
    index: Path
    corpus: Path
    proc: subprocess.Popen
    log: Path

    def client(self, token: str | None = TOKEN, **kwargs) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(log: Path, env: dict, *args: str) -> subprocess.Popen:
    """The real `python -m qa serve ARGS`, its output (both streams) going to `log`."""
    with open(log, "w") as out:
        return subprocess.Popen([sys.executable, "-m", "qa", "serve", *args], stdout=out,
                                stderr=subprocess.STDOUT, env=env)  # fmt: skip


def wait_until_up(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"qa serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"qa serve did not answer /health within {STARTUP_S} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("serve")
    corpus, index = root / "corpus", root / "index"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / REPORT.name)
    build_index(corpus, index, embedder=embedder)
    log = root / "server.log"
    env = dict(os.environ, QA_API_TOKEN=TOKEN, QA_CORPUS=str(corpus), QA_API_HEALTH_MAX_AGE="1")
    env.pop("QA_API_CORS", None)
    yield from running_server(log, env, index, corpus, "--workers", "2", "--cors-origin", ORIGIN)


def running_server(log: Path, env: dict, index: Path, corpus: Path, *args: str):
    """`qa serve --index INDEX --port P ARGS` while the caller runs; then stopped, and its log
    holds no traceback."""
    port = free_port()
    proc = start_serve(log, env, "--index", str(index), "--port", str(port), *args)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, proc, log)
        yield Server(url, index, corpus, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log.read_text()  # no error escaped the handlers, even in the log


REQUEST_TIMEOUT_S = 1  # the open server's (the default is 10 s)
ALLOWED_NAME = "qa.example.org"


@pytest.fixture(scope="module")
def open_server(tmp_path_factory, embedder):
    """`qa serve` without a token, as on a laptop (one worker): short request deadlines and
    health delay for the tests, one host name allowed besides localhost, its own corpus."""
    root = tmp_path_factory.mktemp("open")
    corpus, index = root / "corpus", root / "index"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / REPORT.name)
    build_index(corpus, index, embedder=embedder)
    env = {k: v for k, v in os.environ.items() if k not in ("QA_API_TOKEN", "QA_API_CORS")}
    env.update(QA_CORPUS=str(corpus), QA_API_REQUEST_TIMEOUT=str(REQUEST_TIMEOUT_S),
               QA_API_HEALTH_MAX_AGE="1")  # fmt: skip
    yield from running_server(root / "server.log", env, index, corpus,
                              "--allowed-host", ALLOWED_NAME)  # fmt: skip


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


def cli_answers(capsys, monkeypatch, index: Path, questions: list[str], *options: str) -> list:
    """`qa ask --json` for each question (one per line on standard input), parsed."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(q + "\n" for q in questions)))
    code = main(["ask", "--index", str(index), "--json", *options])
    out, err = capsys.readouterr()
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


# -- the same answers, in the same schema, as `qa ask --json` ---------------------------------


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_ask_returns_exactly_what_the_cli_prints(client, server, capsys, monkeypatch, mode):
    questions = [q["question"] for q in report_questions()] + [
        "chiropractor",
        "What is the capital of France?",
        "what is the best mattress for back pain?",  # a missing term
        "¿Qué causa el dolor crónico en la mitad de la espalda?",  # another language
        "東京 🙂",
        "back pain " * 180,  # over the model window, under MAX_QUESTION_CHARS
        "back pain " * 300,  # over MAX_QUESTION_CHARS: cut by both, alike
    ]
    k = {"hybrid": 5, "dense": 3, "lexical": 1}[mode]
    expected = cli_answers(
        capsys, monkeypatch, server.index, questions, "-k", str(k), "--mode", mode
    )
    assert len(expected) == len(questions)
    for question, cli in zip(questions, expected, strict=True):
        response = client.post("/ask", json={"question": question, "k": k, "mode": mode})
        assert response.status_code == 200, response.text
        api = response.json()
        AnswerModel.model_validate(cli)  # one schema for both (unknown keys are refused)
        AnswerModel.model_validate(api)
        assert api == cli, question
    assert any(a["truncated"] for a in expected) and not all(a["answered"] for a in expected)


def test_doc_filter_and_default_mode_match_the_cli(client, server, capsys, monkeypatch):
    question = "What causes chronic mid back pain?"
    expected = cli_answers(capsys, monkeypatch, server.index, [question], "--doc", "*.txt")
    got = client.post("/ask", json={"question": question, "doc": "*.txt"}).json()
    assert got == expected[0] and got["mode"] == "hybrid" and len(got["hits"]) == 5
    assert (
        client.post("/ask", json={"question": question, "doc": ["chronic*", "*.TXT"]}).json()
        == expected[0]
    )


def test_answer_schema_is_the_library_object(report_searcher):
    answer = report_searcher.ask("chiropractor", k=2).to_json()
    assert list(answer) == list(AnswerModel.model_fields)
    assert list(answer["hits"][0]) == list(
        AnswerModel.model_fields["hits"].annotation.__args__[0].model_fields
    )
    broken = dict(answer, extra=1)
    with pytest.raises(ValueError):
        AnswerModel.model_validate(broken)


def test_documents_health_and_openapi(client, server):
    docs = client.get("/documents")
    assert docs.status_code == 200
    body = docs.json()
    assert [d["path"] for d in body["documents"]] == [REPORT.name]
    assert body["documents"][0]["chunks"] == 12
    health = httpx.get(server.url + "/health").json()  # no token needed: for load balancers
    head = httpx.head(server.url + "/health")  # (some check with HEAD)
    assert head.status_code == 200 and head.content == b""
    assert health["status"] == "ok" and health["generation"] == body["generation"]
    assert health["stale"] is False and health["stale_checked"] is True
    assert health["model"] == config.DEFAULT_MODEL and health["chunks"] == 12
    schema = httpx.get(server.url + "/openapi.json").json()
    ask = schema["paths"]["/ask"]["post"]
    assert ask["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/AnswerModel"
    )
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    assert httpx.get(server.url + "/docs").status_code == 200


@pytest.mark.browser
def test_api_docs_render_in_a_browser_with_nothing_else_reachable(server, browser):
    """/docs is Swagger UI: its scripts and styles come from `qa serve` itself (they came from
    a CDN, and the page stayed blank where nothing else can be reached). Chromium may fetch
    only from the server here; the page must render the API's operations."""
    for page_path in ("/docs", "/redoc"):
        html = httpx.get(server.url + page_path).text
        assert "cdn." not in html and "https://" not in html.split("<body")[0], page_path
    elsewhere = []
    page = browser.new_page()  # (the session's Chromium: one Playwright per process)

    def only_the_server(route):
        if route.request.url.startswith(server.url + "/"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    try:
        page.route("**/*", only_the_server)
        page.goto(server.url + "/docs")
        page.wait_for_selector("text=/ask", timeout=30_000)
        shown = page.inner_text("body")
    finally:
        page.close()
    assert "/documents" in shown and "/health" in shown and "qa" in shown
    assert elsewhere == []


# -- bad input: 4xx with a JSON error, never a 500 or a traceback -----------------------------

JSON = {"Content-Type": "application/json"}
BAD = [
    ("empty question", {"json": {"question": ""}}, 422, "question"),
    ("blank question", {"json": {"question": " \t\x00 "}}, 422, "the question is empty"),
    ("question not text", {"json": {"question": ["a"]}}, 422, "question"),
    (
        "lone surrogate",
        {"content": b'{"question": "back \\ud800 pain"}', "headers": JSON},
        422,
        "question: ",
    ),
    ("no question", {"json": {"k": 3}}, 422, "question: Field required"),
    ("k zero", {"json": {"question": "x", "k": 0}}, 422, "k: "),
    ("k too large", {"json": {"question": "x", "k": 1001}}, 422, "k: "),
    ("k as text", {"json": {"question": "x", "k": "5"}}, 422, "k: "),
    ("k fractional", {"json": {"question": "x", "k": 2.5}}, 422, "k: "),
    ("k boolean", {"json": {"question": "x", "k": True}}, 422, "k: "),
    ("unknown mode", {"json": {"question": "x", "mode": "fuzzy"}}, 422, "mode: "),
    (
        "doc matching nothing",
        {"json": {"question": "x", "doc": "*.docx"}},
        422,
        "no document matches",
    ),
    ("blank doc", {"json": {"question": "x", "doc": ""}}, 422, "doc: "),
    ("doc not text", {"json": {"question": "x", "doc": 3}}, 422, "doc: "),
    ("unknown field", {"json": {"question": "x", "top_k": 3}}, 422, "unknown field 'top_k'"),
    ("malformed JSON", {"content": b'{"question": "x",', "headers": JSON}, 400, "not valid JSON"),
    ("not UTF-8", {"content": b'{"question": "\xff"}', "headers": JSON}, 400, "not valid JSON"),
    ("JSON list", {"content": b'["x"]', "headers": JSON}, 422, "must be a JSON object"),
    (  # deeper than Python's parser recurses, under the size limit (was a 500)
        "JSON nested too deeply",
        {"content": b'{"question": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", "headers": JSON},
        400,
        "not valid JSON",
    ),
    ("JSON null", {"content": b"null", "headers": JSON}, 422, "must be a JSON object"),
    ("empty body", {"content": b"", "headers": JSON}, 422, "must be a JSON object"),
    ("form content type", {"data": {"question": "x"}}, 415, "must be JSON"),
    (
        "text content type",
        {"content": b'{"question": "x"}', "headers": {"Content-Type": "text/plain"}},
        415,
        "must be JSON",
    ),
    ("no content type", {"content": b'{"question": "x"}'}, 415, "must be JSON"),
]


@pytest.mark.parametrize("kwargs,status,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_is_a_json_4xx(client, kwargs, status, message):
    response = client.post("/ask", **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = ErrorModel.model_validate(response.json())
    assert message in error.error and error.hint
    assert "Traceback" not in response.text


def test_a_question_over_the_limit_is_cut_as_the_cli_cuts_it(client):
    question = "back pain " * MAX_QUESTION_CHARS  # 10,000 characters, within the body limit
    response = client.post("/ask", json={"question": question, "k": 1})
    assert response.status_code == 200, response.text  # one limit, one behaviour: cut, not 422
    answer = response.json()
    assert answer["truncated"] is True and answer["question"] == question[:MAX_QUESTION_CHARS]


def test_json_with_a_charset_is_json(client):
    body = json.dumps({"question": "chiropractor", "k": 1}).encode()
    headers = {"Content-Type": "application/json; charset=utf-8"}
    assert client.post("/ask", content=body, headers=headers).status_code == 200


@pytest.mark.parametrize(
    "method,path,status", [("GET", "/ask", 405), ("POST", "/health", 405), ("GET", "/nowhere", 404)]
)
def test_wrong_paths_and_methods_are_json(client, method, path, status):
    response = client.request(method, path)
    assert response.status_code == status
    assert set(response.json()) == {"error", "hint"}


def test_request_body_size_is_limited(client):
    big = json.dumps({"question": "x" * (2 * guard.MAX_BODY_BYTES)}).encode()
    announced = client.post("/ask", content=big, headers=JSON)  # with Content-Length
    assert announced.status_code == 413
    assert "larger than" in announced.json()["error"]

    def chunks():  # no Content-Length: chunked transfer encoding, more than the limit
        for _ in range(2 * guard.MAX_BODY_BYTES // 1024 + 1):
            yield b" " * 1024

    streamed = client.post("/ask", content=chunks(), headers=JSON)
    assert streamed.status_code == 413 and "larger than" in streamed.json()["error"]
    assert client.post("/ask", json={"question": "still answering?"}).status_code == 200


# -- who may ask ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}"],
)
def test_token_is_required_when_set(server, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in [("POST", "/ask"), ("GET", "/documents")]:
        response = httpx.request(method, server.url + path, headers=headers, json={"question": "x"})
        assert response.status_code == 401, (authorization, path)
        assert response.headers["www-authenticate"] == "Bearer"
        assert "bearer token" in response.json()["error"]


def test_token_check_is_constant_time_compare():
    assert guard.token_matches(f"Bearer {TOKEN}", TOKEN)
    assert guard.token_matches(f"bearer  {TOKEN} ", TOKEN)
    assert not guard.token_matches(f"Bearer {TOKEN}é", TOKEN)
    assert not guard.token_matches(None, TOKEN) and not guard.token_matches("", TOKEN)


@pytest.mark.parametrize(
    "host,loopback",
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.org", False),
    ],
)
def test_loopback_hosts(host, loopback):
    assert guard.is_loopback(host) is loopback


def test_binding_elsewhere_needs_a_token_or_no_auth():
    assert guard.check_binding("127.0.0.1", None, False) is None
    assert guard.check_binding("0.0.0.0", TOKEN, False) is None
    warning = guard.check_binding("0.0.0.0", None, True)
    assert warning and "without a token" in warning
    for bad in ("tokén", "two words", "tab\there"):
        with pytest.raises(UsageError, match="printable ASCII"):
            guard.check_binding("127.0.0.1", bad, False)


def test_serve_refuses_before_listening(capsys, monkeypatch, report_index, tmp_path):
    monkeypatch.delenv("QA_API_TOKEN", raising=False)
    code = main(["serve", "--index", str(report_index), "--host", "0.0.0.0"])
    err = capsys.readouterr().err
    assert code == 2 and "needs a token" in err and "QA_API_TOKEN" in err
    monkeypatch.setenv("QA_API_TOKEN", TOKEN)
    code = main(["serve", "--index", str(report_index), "--host", "0.0.0.0", "--no-auth"])
    assert code == 2 and "--no-auth given while $QA_API_TOKEN is set" in capsys.readouterr().err
    code = main(["serve", "--index", str(tmp_path / "none"), "--port", str(free_port())])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("qa: error: no index at") and "Traceback" not in err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code = main(["serve", "--index", str(report_index), "--port", port])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith(f"qa: error: cannot listen on 127.0.0.1:{port}")
    code = main(["serve", "--index", str(report_index), "--host", "no-such-host.invalid"])
    assert code == 1 and "cannot listen on no-such-host.invalid" in capsys.readouterr().err
    assert main(["serve", "--index", str(report_index), "--workers", "0"]) == 2
    assert main(["serve", "--index", str(report_index), "--port", "70000"]) == 2


def test_one_worker_without_auth_off_localhost(tmp_path, report_index, report_searcher):
    """The real command, one worker (the app built before uvicorn starts), --no-auth on all
    interfaces: the warning comes first, then it answers without a token."""
    env = {k: v for k, v in os.environ.items() if k not in ("QA_API_TOKEN", "QA_API_CORS")}
    port = free_port()
    log = tmp_path / "server.log"
    proc = start_serve(log, env, "--index", str(report_index), "--host", "0.0.0.0", "--port",
                       str(port), "--no-auth")  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, proc, log)
        response = httpx.post(url + "/ask", json={"question": "chiropractor", "k": 2})
        assert response.status_code == 200
        assert response.json() == report_searcher.ask("chiropractor", 2).to_json("chiropractor")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    first = log.read_text().splitlines()[0]
    assert first.startswith("qa: warning: serving on 0.0.0.0 without a token (--no-auth)")


def test_cors_only_for_configured_origins(server, report_searcher):
    from starlette.middleware.cors import CORSMiddleware

    from qa.api.app import create_app

    ask = {"question": "chiropractor", "k": 1}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    allowed = httpx.post(server.url + "/ask", json=ask, headers={**headers, "Origin": ORIGIN})
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    other = httpx.post(
        server.url + "/ask", json=ask, headers={**headers, "Origin": "https://evil.example"}
    )
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    preflight = httpx.options(
        server.url + "/ask",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    # without --cors-origin (or $QA_API_CORS) there is no CORS middleware at all
    assert CORSMiddleware not in [m.cls for m in create_app(report_searcher).user_middleware]


def test_unexpected_errors_are_json_without_traceback(report_searcher, monkeypatch):
    from starlette.testclient import TestClient

    from qa.api.app import create_app

    def explode(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    app = create_app(report_searcher)
    monkeypatch.setattr(report_searcher, "ask", explode)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        response = test_client.post("/ask", json={"question": "x"})
    assert response.status_code == 500
    assert response.json()["error"] == "unexpected RuntimeError"
    assert "secret" not in response.text and "Traceback" not in response.text


def test_fast_path_answers_as_the_route_does(report_searcher, monkeypatch):
    """`POST /ask` in good order is answered past FastAPI's routing (`qa.api.fastpath`): the
    same status, headers and bytes as the route for every request here, good and bad, with
    and without a token; and the good ones really take the fast path."""
    from starlette.testclient import TestClient

    from qa.api import app as app_module

    good = [{"question": q["question"], "k": k, "mode": mode}
            for q, k, mode in zip(report_questions()[:6], (1, 3, 5, 2, 4, 1),
                                  ("hybrid", "dense", "lexical", "hybrid", "dense", "hybrid"),
                                  strict=False)]  # fmt: skip
    good += [{"question": "chiropractor", "doc": "*.txt"}, {"question": "é 背痛 🙂", "k": 2}]
    requests = [{"json": body} for body in good]
    requests += [kwargs for _, kwargs, _, _ in BAD]
    requests.append({"content": json.dumps(good[0]).encode(),
                     "headers": {"Content-Type": "application/json; charset=utf-8"}})  # fmt: skip
    big = json.dumps({"question": "x" * (2 * guard.MAX_BODY_BYTES)}).encode()
    requests.append({"content": big, "headers": JSON})
    kinds = {"route": {"fast_path": False}, "thread": {}, "loop": {"workers": 64}}
    for token in (None, TOKEN):
        apps = {kind: app_module.create_app(report_searcher, token, **options)
                for kind, options in kinds.items()}  # fmt: skip
        auths = [{}, {"Authorization": f"Bearer {token}"}, {"Authorization": "Bearer wrong"}]
        for auth in auths if token else [{}]:
            for kwargs in requests:
                replies = []
                for kind in kinds:
                    with TestClient(apps[kind], raise_server_exceptions=False) as c:
                        headers = {**kwargs.get("headers", {}), **auth}
                        r = c.post("/ask", **{**kwargs, "headers": headers})
                    headers = [h for h in r.headers.raw if h[0].lower() != b"connection"]
                    replies.append((r.status_code, headers, r.content))  # (see Rebalance)
                assert replies[0] == replies[1] == replies[2], (kwargs, auth)
    # the good ones never reach the route (which builds a Response) on the fast path
    fast_app = app_module.create_app(report_searcher, TOKEN)

    def no_route(*args, **kwargs):
        raise AssertionError("the route answered")

    monkeypatch.setattr(app_module, "Response", no_route)
    with TestClient(fast_app, raise_server_exceptions=False) as c:
        for body in good:
            r = c.post("/ask", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 200 and AnswerModel.model_validate(r.json())


def test_every_server_process_logs_alike(server):
    """The worker processes (spawned by uvicorn, not by `qa`'s own main) use the same
    lower-case level names as the parent: no "INFO:" beside "info:"."""
    lines = server.log.read_text().splitlines()
    assert any(line.startswith("info:") and "Started server process" in line for line in lines)
    assert not [line for line in lines if line.split(":")[0] in ("INFO", "WARNING", "ERROR")]


def test_a_worker_process_logs_its_own_messages_as_qa_does(report_index):
    """A worker's own warnings (a damaged model export it exports again) came out bare, without
    "qa: warning:", and its notes not at all: nothing had set its logging up. `qa --debug
    serve` now gives its workers debug lines too (QA_DEBUG)."""
    code = ("import logging\n"
            "from qa.api.app import create_app_from_env\n"
            "create_app_from_env()\n"
            "logging.getLogger('qa.embed.onnx').warning('exporting \\x1b[31m again')\n"
            "logging.getLogger('qa.build').debug('only when debugging')\n")
    for debug in ("", "1"):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "QA_INDEX": str(report_index),
                                                "QA_DEBUG": debug})  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "qa: warning: exporting  [31m again\n" in proc.stderr
        assert ("qa: debug: only when debugging" in proc.stderr) == bool(debug)


def count_thread_hops(monkeypatch) -> list:
    """A list that gets an item each time the fast path hands a search to a thread."""
    from qa.api import fastpath

    hops = []
    real = fastpath.to_thread.run_sync

    async def counted(*args, **kwargs):
        hops.append(1)
        return await real(*args, **kwargs)

    monkeypatch.setattr(fastpath.to_thread, "run_sync", counted)
    return hops


def test_fast_path_searches_on_the_loop_with_a_process_per_core(report_searcher, monkeypatch):
    """With a worker per core (and a store searched in this process) the fast path answers on
    the event loop, no thread; with fewer workers, or a database store, in a thread."""
    from starlette.testclient import TestClient

    from qa.api import app as app_module
    from qa.api import fastpath

    cores = fastpath.usable_cores()
    assert cores == len(os.sched_getaffinity(0))
    monkeypatch.delattr(os, "sched_getaffinity")  # as on macOS and Windows
    assert fastpath.usable_cores() == os.cpu_count()
    monkeypatch.undo()
    assert fastpath.search_on_loop(False, cores) and fastpath.search_on_loop(False, cores + 1)
    assert not fastpath.search_on_loop(True, cores)  # PostgreSQL: the search waits on it
    assert fastpath.search_on_loop(False, 1) == (cores == 1)
    threads = count_thread_hops(monkeypatch)
    for workers, hops in ((64, 0), (1, 0 if cores == 1 else 2)):
        threads.clear()
        app = app_module.create_app(report_searcher, workers=workers)
        with TestClient(app) as c:
            for q in ("chiropractor", "is it psychological?"):
                assert c.post("/ask", json={"question": q}).status_code == 200
        assert len(threads) == hops, workers


def test_a_newer_build_is_loaded_in_a_thread_not_on_the_loop(tmp_path, embedder, monkeypatch):
    """On the loop, a search that must first load a newer build goes to a thread (the load
    would hold up the worker's other requests); the ones after it are on the loop again."""
    from starlette.testclient import TestClient

    from qa.api import app as app_module
    from qa.retrieve.searcher import Searcher

    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / REPORT.name)
    build_index(corpus, index, embedder=embedder)
    searcher = Searcher(index, embedder=embedder)
    hops = count_thread_hops(monkeypatch)
    app = app_module.create_app(searcher, workers=64)
    with TestClient(app) as c:
        def ask() -> dict:
            r = c.post("/ask", json={"question": "What does a chiropractor do?", "k": 1})
            assert r.status_code == 200
            return r.json()

        ask()
        old = searcher.generation.id
        (corpus / "chiropractors.txt").write_text("A chiropractor adjusts the spine by hand.\n")
        build_index(corpus, index, embedder=embedder)
        assert len(hops) == 0
        assert ask()["hits"][0]["doc"] == "chiropractors.txt" and len(hops) == 1
        assert searcher.generation.id != old
        ask()
        assert len(hops) == 1


def test_with_several_workers_every_nth_response_hands_the_connection_back(report_searcher):
    """`qa.api.rebalance`: so that uvicorn's workers share clients that connected at once."""
    from starlette.testclient import TestClient

    from qa.api import app as app_module
    from qa.api.rebalance import REQUESTS_PER_CONNECTION

    for workers, closing in ((2, {REQUESTS_PER_CONNECTION, 2 * REQUESTS_PER_CONNECTION}),
                             (1, set())):  # fmt: skip
        app = app_module.create_app(report_searcher, workers=workers)
        seen = set()
        with TestClient(app) as c:
            for i in range(1, 2 * REQUESTS_PER_CONNECTION + 3):
                r = (c.post("/ask", json={"question": "chiropractor", "k": 1}) if i % 2 else
                     c.get("/health"))  # every response counts  # fmt: skip
                assert r.status_code == 200
                if r.headers.get("connection") == "close":
                    seen.add(i)
        assert seen == closing, workers


def test_the_real_server_closes_a_connection_after_its_nth_answer(server):
    """Through uvicorn: the REQUESTS_PER_CONNECTION-th answer on one keep-alive connection is
    the last on it, and the client's next request (on a new connection) is answered."""
    from qa.api.rebalance import REQUESTS_PER_CONNECTION

    host, port = server.url.removeprefix("http://").split(":")
    body = json.dumps({"question": "chiropractor", "k": 1}).encode()
    request = (b"POST /ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: "
               + str(len(body)).encode() + b"\r\n\r\n" + body)  # fmt: skip
    with socket.create_connection((host, int(port)), timeout=60) as sock, \
            sock.makefile("rb") as reader:  # fmt: skip
        for i in range(1, REQUESTS_PER_CONNECTION + 1):
            sock.sendall(request)
            status = reader.readline()
            headers = {}
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.lower()] = value.strip()
            assert status.startswith(b"HTTP/1.1 200"), status
            reader.read(int(headers["content-length"]))
            assert (headers.get("connection") == "close") == (i == REQUESTS_PER_CONNECTION)
        assert reader.read() == b""  # uvicorn closed it
    with server.client() as c:
        assert c.post("/ask", json={"question": "chiropractor"}).status_code == 200


# -- the Host rule (DNS rebinding) ------------------------------------------------------------

ASK = {"question": "What causes chronic mid back pain?", "k": 2}


def host_replies(url: str, host: str) -> list[httpx.Response]:
    """GET /documents, POST /ask (the fast path) and GET /health with this Host header."""
    headers = {"Host": host}
    return [httpx.get(url + "/documents", headers=headers, timeout=60),
            httpx.post(url + "/ask", json=ASK, headers=headers, timeout=60),
            httpx.get(url + "/health", headers=headers, timeout=60)]  # fmt: skip


def test_without_a_token_only_this_machines_names_are_answered(open_server):
    """A web page whose domain an attacker re-points at 127.0.0.1 (DNS rebinding) reaches the
    tokenless API with its own domain in the Host header: that read the documents
    (`curl -H 'Host: rebind.attacker.example:18001' localhost:18001/documents`)."""
    port = open_server.url.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", "localhost", "LocalHost.", f"127.0.0.1:{port}",
                 f"[::1]:{port}", "10.1.2.3:8000", "[fe80::1]", ALLOWED_NAME,
                 f"{ALLOWED_NAME}:443"):  # fmt: skip
        assert [r.status_code for r in host_replies(open_server.url, host)] == [200] * 3, host
    for host in (f"rebind.attacker.example:{port}", "localhost.attacker.example",
                 f"{ALLOWED_NAME}.attacker.example", "127.0.0.1.nip.io", ""):  # fmt: skip
        for reply in host_replies(open_server.url, host):
            assert reply.status_code == 400, (host, reply.request.url)
            error = ErrorModel.model_validate(reply.json())
            assert "does not answer for the host" in error.error and "--allowed-host" in error.hint


def test_with_a_token_any_host_is_answered_to_the_token_only(server):
    """A rebinding page does not have the token: with one, the Host header is not checked
    (a server behind load balancers is called by many names)."""
    headers = {"Host": "rebind.attacker.example"}
    assert httpx.get(server.url + "/documents", headers=headers).status_code == 401
    with server.client() as c:
        assert c.get("/documents", headers=headers).status_code == 200


def test_the_host_rule():
    assert guard.allowed_hosts(None) == {"localhost"}
    assert guard.allowed_hosts(None, ["QA.example.org:8000"], "127.0.0.1") == {
        "localhost", "qa.example.org", "127.0.0.1"}  # fmt: skip
    assert guard.allowed_hosts(TOKEN) is None  # the token guards it
    assert guard.allowed_hosts(TOKEN, ["qa.example.org"]) == {"localhost", "qa.example.org"}
    assert guard.allowed_hosts(None, ["*"]) is None
    for bad in ("http://qa.example.org/", "two words", "a/b", ":"):
        with pytest.raises(UsageError, match="is not a host name"):
            guard.allowed_hosts(None, [bad])
    allowed = guard.allowed_hosts(None, ["qa.example.org"])
    for host, ok in [("localhost:8000", True), ("[::1]:8000", True), ("192.168.1.5", True),
                     ("qa.example.org.", True), (None, True), ("qa.example.org.evil", False),
                     ("localhost.evil:80", False), ("", False)]:  # fmt: skip
        assert guard.host_allowed(host, allowed) is ok, host


def test_serve_refuses_bad_host_names_and_settings(capsys, monkeypatch, report_index):
    monkeypatch.delenv("QA_API_TOKEN", raising=False)
    code = main(["serve", "--index", str(report_index), "--allowed-host", "http://x.example/"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("qa: error: allowed host 'http://x.example/' is not")
    for variable, value in (("QA_API_REQUEST_TIMEOUT", "soon"), ("QA_API_MAX_CONNECTIONS", "0"),
                            ("QA_API_HEALTH_MAX_AGE", "-1")):  # fmt: skip
        monkeypatch.setenv(variable, value)
        code = main(["serve", "--index", str(report_index)])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith(f"qa: error: ${variable} must be a number"), err
        assert err.count("\n") == 1
        monkeypatch.delenv(variable)


# -- unfinished requests and many connections ---------------------------------------------------

HALF_SENT = {
    "nothing": b"",
    "half a request line": b"GET /hea",
    "half the headers": b"GET /health HTTP/1.1\r\nHost: localhost\r\n",
    "half the body": b"POST /ask HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 100\r\n\r\n{\"question\": ",
}


def hang(url: str, sent: bytes) -> socket.socket:
    """A connection to the server that sends `sent` and then nothing more."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)
    if sent:
        sock.sendall(sent)
    return sock


def test_unfinished_requests_time_out_while_questions_are_answered(open_server):
    """Idle connections and half-sent request lines, headers and bodies stayed open (> 40 s):
    now each is closed once its request is not whole within QA_API_REQUEST_TIMEOUT (1 s
    here), with a 408 when part of a request had come; questions are answered meanwhile."""
    hanging = {kind: [hang(open_server.url, sent) for _ in range(3)]
               for kind, sent in HALF_SENT.items()}  # fmt: skip
    try:
        reply = httpx.post(open_server.url + "/ask", json=ASK, timeout=60)
        assert reply.status_code == 200 and reply.json()["hits"]
        for kind, socks in hanging.items():
            for sock in socks:
                received = b""
                while chunk := sock.recv(4096):  # until the server closes it (60 s at most)
                    received += chunk
                if kind == "nothing":
                    assert received == b"", kind
                else:
                    head, _, body = received.partition(b"\r\n\r\n")
                    assert head.startswith(b"HTTP/1.1 408 "), (kind, received)
                    error = ErrorModel.model_validate(json.loads(body))
                    assert error.error == f"the request did not arrive within {REQUEST_TIMEOUT_S} s"
    finally:
        for socks in hanging.values():
            for sock in socks:
                sock.close()
    assert httpx.post(open_server.url + "/ask", json=ASK, timeout=60).status_code == 200


def test_more_hanging_clients_than_descriptors_leave_questions_answered(
    tmp_path, report_index, report_searcher
):
    """1,100 idle connections under `ulimit -n 1024` made a normal /ask fail: the server had no
    descriptor left to accept it with. Here 400 idle and 40 half-sent connections under a
    limit of 256, with request deadlines far away: connections are capped below the limit
    (the one waiting longest for a request gives way), so the question is answered."""
    import resource

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(
            resource.RLIMIT_NOFILE)[1]))  # fmt: skip

    env = {k: v for k, v in os.environ.items() if k not in ("QA_API_TOKEN", "QA_API_CORS")}
    env["QA_API_REQUEST_TIMEOUT"] = "600"
    port, log = free_port(), tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "qa", "serve", "--index", str(report_index),
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT,
                                env=env, preexec_fn=low_limit)  # fmt: skip
    url, hanging = f"http://127.0.0.1:{port}", []
    try:
        wait_until_up(url, proc, log)
        hanging += [hang(url, b"") for _ in range(400)]
        hanging += [hang(url, HALF_SENT["half the headers"]) for _ in range(40)]
        reply = httpx.post(url + "/ask", json=ASK, timeout=60)
        assert reply.status_code == 200, reply.text
        assert reply.json() == report_searcher.ask(ASK["question"], 2).to_json(ASK["question"])
        assert httpx.get(url + "/health", timeout=60).json()["status"] == "ok"
    finally:
        for sock in hanging:
            sock.close()
        proc.terminate()
        proc.wait(timeout=30)
    assert "Traceback" not in log.read_text()


# -- /health: one walk of the corpus per delay ---------------------------------------------------


def eventually_stale(client: httpx.Client, stale: bool) -> bool:
    """Whether /health comes to say `stale` (it may answer from a check up to its delay old)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if client.get("/health").json()["stale"] is stale:
            return True
        time.sleep(0.1)
    return False


def test_health_walks_the_corpus_once_per_delay(tmp_path, embedder, monkeypatch):
    """Every /health call walked the whole corpus (0.4 s at 20,000 files; eight health clients
    took /ask from p50 8 ms to 261 ms). Now one walk serves the calls of a delay."""
    from starlette.testclient import TestClient

    from qa import staleness
    from qa.api.app import create_app
    from qa.retrieve.searcher import Searcher

    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / REPORT.name)
    build_index(corpus, index, embedder=embedder)
    walks = []
    real = staleness._corpus_files

    def counted(folder):
        walks.append(folder)
        return real(folder)

    monkeypatch.setattr(staleness, "_corpus_files", counted)
    with TestClient(create_app(Searcher(index, embedder=embedder), health_max_age=3600)) as c:
        assert [c.get("/health").json()["stale"] for _ in range(50)] == [False] * 50
        assert len(walks) == 1
        (corpus / "new.txt").write_text("A new document about sleep.\n", encoding="utf-8")
        assert c.get("/health").json()["stale"] is False and len(walks) == 1  # within the delay
    with TestClient(create_app(Searcher(index, embedder=embedder), health_max_age=0)) as c:
        assert c.get("/health").json()["stale"] is True and len(walks) == 2


def test_health_tells_a_change_within_its_delay(open_server):
    """The real server (QA_API_HEALTH_MAX_AGE=1): a document added is reported, and its removal
    too, each within the delay, while the calls between share one walk."""
    extra = open_server.corpus / "added.txt"
    with httpx.Client(base_url=open_server.url, timeout=60) as c:
        assert c.get("/health").json()["stale"] is False
        extra.write_text("Added after the build.\n", encoding="utf-8")
        try:
            assert eventually_stale(c, True)
        finally:
            extra.unlink()
        assert eventually_stale(c, False)


# -- one encoding for one object --------------------------------------------------------------


def test_api_and_cli_write_the_same_bytes_bidi_controls_escaped(open_server, capsys,
                                                                monkeypatch):  # fmt: skip
    """The API sent a bidi override raw where `qa ask --json` escapes it (\\u202e): the same
    object in two encodings. Both now write the same bytes."""
    question = "back pain \u202e\u2066 desrever \u2069\u202c \x9b31m"
    monkeypatch.setattr(sys, "stdin", io.StringIO(question + "\n"))
    assert main(["ask", "--index", str(open_server.index), "--json", "-k", "2"]) == 0
    line = capsys.readouterr().out.removesuffix("\n")
    reply = httpx.post(open_server.url + "/ask", json={"question": question, "k": 2}, timeout=60)
    assert reply.status_code == 200 and reply.content == line.encode("utf-8")
    assert "\\u202e" in line and "\u202e" not in line and "\\u009b" in line
    assert reply.json()["question"] == question


# -- load: many clients, every answer identical to the serial one ----------------------------


def test_concurrent_clients_get_the_serial_answers(server, client):
    questions = two_hundred_questions()
    serial = {}
    for q in questions:
        response = client.post("/ask", json={"question": q, "k": 3})
        assert response.status_code == 200, response.text
        serial[q] = response.json()
    mismatches: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(CLIENTS)

    def one_client(n: int) -> None:
        order = questions[:]
        random.Random(n).shuffle(order)
        try:
            with server.client() as own:  # its own connection, as a separate program would
                start.wait()
                for q in order[:REQUESTS_PER_CLIENT]:
                    response = own.post("/ask", json={"question": q, "k": 3})
                    if response.status_code != 200 or response.json() != serial[q]:
                        mismatches.append(f"{response.status_code}: {q[:60]}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one_client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and mismatches == []


# -- a rebuilt index goes live without a restart (these two change the module's index) ---------


def test_rebuild_is_picked_up_and_answers_stay_correct(server, client):
    questions = ["Which mattress helps back pain at night?", "chiropractor", "東京 🙂"]

    def ask(c: httpx.Client, q: str) -> dict:
        response = c.post("/ask", json={"question": q, "k": 3})
        assert response.status_code == 200, response.text
        return response.json()

    before = {q: ask(client, q) for q in questions}
    old = client.get("/health").json()["generation"]
    (server.corpus / "sleep.txt").write_text(
        "Sleep and back pain\n\nA firm mattress and sleeping on your side can ease back pain "
        "at night.\n",
        encoding="utf-8",
    )
    assert eventually_stale(client, True)  # within QA_API_HEALTH_MAX_AGE (1 s here)
    seen: list[tuple[str, dict]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def keep_asking(n: int) -> None:
        rng = random.Random(n)
        try:
            with server.client() as own:
                while not stop.is_set():
                    q = rng.choice(questions)
                    seen.append((q, ask(own, q)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=keep_asking, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    try:
        build = subprocess.run(
            [
                sys.executable,
                "-m",
                "qa",
                "build",
                "-q",
                "--corpus",
                str(server.corpus),
                "--index",
                str(server.index),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        during = len(seen)
        time.sleep(0.5)  # the clients go on asking the new build
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert build.returncode == 0, build.stderr
    assert errors == [] and during > 0
    health = client.get("/health").json()
    assert health["generation"] != old and health["documents"] == 2 and health["stale"] is False
    after = {q: ask(client, q) for q in questions}
    assert after[questions[0]]["hits"][0]["doc"] == "sleep.txt"  # the new document answers
    for q, got in seen:  # every answer came whole from the old build or the new one
        assert got in (before[q], after[q]), q
    assert any(got == after[q] != before[q] for q, got in seen)  # and the clients switched
    docs = client.get("/documents").json()
    assert [d["path"] for d in docs["documents"]] == [REPORT.name, "sleep.txt"]


def test_a_damaged_new_build_is_skipped_not_served(server, client, embedder):
    """A new build that cannot be loaded: answers go on from the loaded one, /health says why,
    and the next good build goes live."""
    question = {"question": "chiropractor", "k": 2}
    before = client.post("/ask", json=question).json()
    loaded = client.get("/health").json()["generation"]
    (server.corpus / "posture.txt").write_text(
        "Posture\n\nSit up straight at the desk.\n", encoding="utf-8"
    )
    build_index(server.corpus, server.index, embedder=embedder)
    live = os.readlink(server.index / "current").split("/")[-1]
    with open(server.index / "builds" / live / "dense.faiss", "ab") as fh:
        fh.write(b"damage")  # its checksum no longer matches
    for _ in range(4):  # both workers try it, and keep their build
        response = client.post("/ask", json=question)
        assert response.status_code == 200 and response.json() == before
    health = client.get("/health").json()
    assert health["generation"] == loaded and "dense.faiss" in health["refresh_error"]
    logged = server.log.read_text().count(f"cannot load {live}")
    assert 1 <= logged <= 2  # once per worker, not once per request
    build_index(server.corpus, server.index, embedder=embedder)
    health = client.get("/health").json()
    assert health["generation"] not in (loaded, live) and health["refresh_error"] is None
    assert health["documents"] == len(list(server.corpus.iterdir()))  # posture.txt included


def worker_pids(parent: int) -> set[int]:
    """The uvicorn worker processes of a `qa serve --workers N` (not multiprocessing's resource
    tracker)."""
    pids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError):  # gone meanwhile
            continue
        if ppid == parent and b"spawn_main" in cmdline:
            pids.add(int(stat.parent.name))
    return pids


def test_a_killed_worker_is_replaced_and_no_request_fails(report_index, tmp_path):
    """kill -9 of one of two workers: the other answers every request meanwhile, uvicorn starts
    a new worker, and the answers stay the same throughout."""
    import signal

    port, log = free_port(), tmp_path / "server.log"
    env = dict(os.environ)
    env.pop("QA_API_TOKEN", None)
    proc = start_serve(log, env, "--index", str(report_index), "--port", str(port), "--workers",
                       "2")  # fmt: skip
    url, ask = f"http://127.0.0.1:{port}", {"question": "Should I get a second opinion?", "k": 3}
    try:
        wait_until_up(url, proc, log)
        deadline = time.monotonic() + STARTUP_S
        while len(worker_pids(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        before = now = worker_pids(proc.pid)
        assert len(before) == 2, before
        expected = httpx.post(url + "/ask", json=ask).json()
        os.kill(min(before), signal.SIGKILL)
        replies = [httpx.post(url + "/ask", json=ask, timeout=60) for _ in range(20)]
        assert [r.status_code for r in replies] == [200] * 20
        assert all(r.json() == expected for r in replies)
        while time.monotonic() < deadline:
            now = worker_pids(proc.pid)
            if len(now) == 2 and min(before) not in now:
                break
            time.sleep(0.2)
        assert len(now) == 2 and min(before) not in now, (before, now, log.read_text())
        with httpx.Client(base_url=url, timeout=60) as client:  # the new worker answers alike
            assert all(client.post("/ask", json=ask).json() == expected for _ in range(20))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "Traceback" not in log.read_text()


def test_without_the_api_extra_the_hint_installs_it_from_this_checkout():
    """The hint is a command that works here: this Python's pip, this checkout's extra (a plain
    `pip install 'qa[api]'` would look up another package named qa on PyPI)."""
    code = ("import sys; sys.modules['uvicorn'] = None; from qa.cli import main; "
            "sys.exit(main(['serve']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 1
    command = f"{shlex.quote(sys.executable)} -m pip install -e {shlex.quote(f'{ROOT}[api]')}"
    assert f"(hint: install the extra `api`: `{command}`)" in proc.stderr
    assert "api = [" in (ROOT / "pyproject.toml").read_text()  # the extra the command names


def test_make_run_installs_what_qa_serve_needs(tmp_path):
    """`qa serve` works after `make run`: its setup installs qa with the API extra."""
    dry = subprocess.run(["make", "-n", "-B", "run", f"VENV={tmp_path / 'venv'}"], cwd=ROOT,
                         capture_output=True, text=True, check=True)  # fmt: skip
    installs = [line for line in dry.stdout.splitlines() if "pip install" in line and "-e" in line]
    assert installs and all('-e ".[api]"' in line for line in installs), dry.stdout
