"""End to end: `streamlit run app.py` on a free port, driven by a real Chromium (Playwright).

The server starts on a fresh, empty index folder, so the first page view also proves that a
fresh clone builds its index with a progress indicator and then answers. This test never
skips: when Chromium is missing or cannot start, it fails and says why.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import REPORT, ROOT

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
OUTPUT = ROOT / "tests" / "output"  # git-ignored
FIRST_VIEW_S = 240  # server start, model load and index build on a busy machine
STEP_S = 30

HOSTILE_DOC = """Hostile <b>markup</b> test

Spinal <script>window.__pwned = 1</script> injection and <img src=x onerror="window.__pwned=2">
images are discussed here; also **bold** [link](javascript:alert(1)) :red[red] $x^2$ :smile:
and a -> b.
"""
HOSTILE_QUESTION = '<img src=x onerror="window.__pwned=3"><script>window.__pwned=4</script>'

# (question, how its best passage begins): consecutive questions have different best passages
TIMED = [
    ("Could my back pain be psychosomatic?", "Instances of longstanding unresolved back pain"),
    ("Is the thoracic spine often injured?", "The thoracic spine is not prone to injury"),
    ("What is knowledge therapy?", "For patients who believe they might be suffering"),
    ("Should I get a second opinion?", "If your treatments have been unsuccessful"),
]
ROUNDS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The page served by `streamlit run app.py` over the report and a hostile document."""
    work = tmp_path_factory.mktemp("browser")
    corpus = work / "corpus"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / REPORT.name)
    (corpus / "hostile.txt").write_text(HOSTILE_DOC, encoding="utf-8")
    port = free_port()
    env = dict(os.environ, QA_INDEX=str(work / "index"), QA_CORPUS=str(corpus), HF_HUB_OFFLINE="1")
    log_path = work / "streamlit.log"
    command = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
        "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited ({proc.returncode}):\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer on {url}:\n{log_path.read_text()}")
            time.sleep(0.3)
        yield url, work / "index"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser():
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
        yield chromium
        chromium.close()


def shown_text(page) -> str:
    """What the page shows, as text (word joiners, which are invisible, dropped)."""
    return page.inner_text("body").replace("\u2060", "")


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


def search_alone(index, embedder) -> list[float]:
    """Seconds `Searcher.ask` takes for the timed questions in this process (the floor)."""
    from qa.retrieve.searcher import Searcher

    searcher = Searcher(index, embedder=embedder)
    searcher.ask("warm up", 1)
    times = []
    for _ in range(ROUNDS):
        for question, _expect in TIMED:
            started = time.perf_counter()
            searcher.ask(question, 1)
            times.append(time.perf_counter() - started)
    return times


def test_the_page_in_a_real_browser(server, browser, embedder, capsys):
    url, index = server
    OUTPUT.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 2200})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        page.goto(url)
        # fresh index folder: the page builds the index, shows it, then offers the question box
        page.get_by_label("Your question").wait_for(timeout=FIRST_VIEW_S * 1000)
        assert "Indexed 2 documents" in shown_text(page)
        assert "it does not give medical advice" in shown_text(page)

        # a question shows the answering passage, and "show in context" its surroundings
        ask(page, *TIMED[0])
        context = page.get_by_test_id("stExpander").first
        context.get_by_text("Show in context").click()
        context.get_by_text("Chronic Middle Back Pain Causes", exact=True).wait_for()

        # an example question is one click away
        page.get_by_role("button", name="Is the thoracic spine often injured?").click()
        page.get_by_text("The thoracic spine is not prone to injury").first.wait_for()

        # the original file downloads, read from the corpus only when the button is clicked
        with page.expect_download() as download:
            page.get_by_role("button", name=f"Download the original ({REPORT.name})").first.click()
        assert Path(download.value.path()).read_bytes() == REPORT.read_bytes()
        assert download.value.suggested_filename == REPORT.name

        # HTML typed into the box is shown as text and runs nothing
        ask(page, HOSTILE_QUESTION, "passages for")
        assert f"for: {HOSTILE_QUESTION}" in shown_text(page)

        # HTML (and Markdown) inside a document is shown as text and runs nothing
        ask(page, "hostile markup spinal injection images", "Spinal <script>window.__pwned = 1")
        page.get_by_text("Show in context").first.click()
        text = shown_text(page)
        for literal in ("<script>window.__pwned = 1</script>", 'onerror="window.__pwned=2">',
                        "**bold**", "[link](javascript:alert(1))", ":red[red]", "$x^2$",
                        ":smile:", "a -> b"):  # fmt: skip
            assert literal in text
        assert page.evaluate("window.__pwned") is None
        injected = "img[src='x'], script:has-text('__pwned'), b:has-text('markup')"
        assert page.locator(injected).count() == 0
        assert dialogs == []
        page.screenshot(path=str(OUTPUT / "page.png"), full_page=True)

        # warm latency, Enter to passage, with one passage per answer
        count = page.get_by_label("Passages")
        count.fill("1")
        count.press("Enter")
        page.wait_for_function("() => document.body.innerText.includes('1 passage for')")
        times = [ask(page, q, expect) for _ in range(ROUNDS) for q, expect in TIMED]
        assert page.evaluate("window.__pwned") is None
    finally:
        page.close()
    floor = search_alone(index, embedder)
    line = (
        f"warm Enter-to-passage latency over {len(times)} questions: "
        f"median {statistics.median(times):.3f} s, max {max(times):.3f} s "
        f"(Searcher.ask alone, same questions: median {statistics.median(floor):.3f} s)"
    )
    (OUTPUT / "latency.txt").write_text(line + "\n", encoding="utf-8")
    with capsys.disabled():
        print(f"\n{line}")
