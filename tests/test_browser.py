"""End to end: `streamlit run app.py` on a free port, driven by a real Chromium (Playwright).

One server for the test session (`conftest.page_server`; tests/test_page_browser.py uses it
too). It starts on a fresh, empty index folder, and its first page view (in the fixture, so
whichever test comes first) proves that a fresh clone builds its index with a progress
indicator and then answers. The tests run in file order:
the last one adds and removes a document. These tests never skip: when Chromium is missing or
cannot start, they fail and say why.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import (
    FIRST_VIEW_S,
    REPORT,
    ROOT,
    STEP_S,
    ask,
    free_port,
    shown_text,
    wait_for_text,
)

pytestmark = pytest.mark.browser

OUTPUT = ROOT / "tests" / "output"  # git-ignored
HOSTILE_QUESTION = '<img src=x onerror="window.__pwned=3"><script>window.__pwned=4</script>'

# (question, how its best passage begins): consecutive questions have different best passages
TIMED = [
    ("Could my back pain be psychosomatic?", "Instances of longstanding unresolved back pain"),
    ("Is the thoracic spine often injured?", "The thoracic spine is not prone to injury"),
    ("What is knowledge therapy?", "For patients who believe they might be suffering"),
    ("Should I get a second opinion?", "If your treatments have been unsuccessful"),
]
ROUNDS = 3


@pytest.fixture
def server(page_server):
    """The session's page (`conftest.page_server`): the report and a hostile document."""
    return page_server


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
        page.goto(url)  # (the fresh clone's first view, which builds: `conftest.page_server`)
        page.get_by_label("Your question").wait_for(timeout=FIRST_VIEW_S * 1000)
        assert "it does not give medical advice" in shown_text(page)
        assert shown_text(page).count("Ask the documents") == 1

        # a question shows the answering passage, and "show in context" its surroundings
        ask(page, *TIMED[0])
        assert "?q=Could+my+back+pain+be+psychosomatic%3F" in page.url  # a link to share
        context = page.get_by_test_id("stExpander").filter(has_text="Show in context").first
        context.get_by_text("Show in context").click()
        context.get_by_text("Chronic Middle Back Pain Causes", exact=True).wait_for()
        assert context.locator("details").get_attribute("open") is not None

        # an example question (a heading of the report, asked as a reader would) is one click
        # away; the expander opened for the previous question starts closed again
        example = "What advice is there for chronic middle back pain?"
        page.get_by_role("button", name=example).click()
        wait_for_text(page, f"passages for: {example}")
        wait_for_text(page, "If your treatments have been unsuccessful")
        shown = page.get_by_test_id("stExpander").filter(has_text="Show in context")
        assert shown.count() == 3
        assert all(d.get_attribute("open") is None for d in shown.locator("details").all())

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


def test_a_link_opens_the_answer_and_the_passage_in_its_document(server, browser):
    url, _ = server
    context = browser.new_context(viewport={"width": 1280, "height": 1400},
                                  permissions=["clipboard-read", "clipboard-write"])  # fmt: skip
    page = context.new_page()
    try:
        # a shared link shows the answer, with the mode and the passage count it names
        page.goto(f"{url}/?q=Is+the+thoracic+spine+often+injured%3F&k=2&mode=dense")
        wait_for_text(page, "2 passages for: Is the thoracic spine often injured?", FIRST_VIEW_S)
        assert page.get_by_label("Meaning only").is_checked()
        wait_for_text(page, "The thoracic spine is not prone to injury")

        # the first card's copy button puts its passage and citation on the clipboard
        page.get_by_text("Copy text").first.click()
        code = page.get_by_test_id("stCode").first
        code.hover()
        code.get_by_role("button", name="Copy to clipboard").click()
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied.startswith("The thoracic spine is not prone to injury")
        assert copied.endswith("(Chronic middle back pain, Chronic Middle Back Pain Advice; "
                               "chronic-middle-back-pain.txt)")  # fmt: skip
        page.keyboard.press("Escape")

        # "Open in the document" opens the document in a new tab, scrolled to the passage
        with context.expect_page() as opened:
            page.get_by_role("link", name="Open in the document").first.click()
        view = opened.value
        view.get_by_role("heading", name="The passage").wait_for(timeout=STEP_S * 1000)
        link = r"\?doc=chronic-middle-back-pain\.txt&start=\d+&end=\d+#passage$"
        assert re.search(link, view.url)
        mark = view.locator(".stMarkdownColoredBackground").first
        assert mark.inner_text().startswith("The thoracic spine is not prone to injury")
        view.wait_for_function(  # the browser scrolled to the passage
            """() => { const r = document.getElementById('passage').getBoundingClientRect();
                       return r.top >= 0 && r.top < window.innerHeight; }""",
            timeout=STEP_S * 1000,
        )
        with view.expect_download() as download:
            view.get_by_role("button", name=f"Download the original ({REPORT.name})").click()
        assert Path(download.value.path()).read_bytes() == REPORT.read_bytes()
        view.screenshot(path=str(OUTPUT / "document-view.png"))
    finally:
        context.close()


def test_labels_agree_with_the_not_covered_decision(server, browser):
    url, _ = server
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    try:
        page.goto(f"{url}/?q=What+is+the+capital+of+France%3F")
        wait_for_text(page, "No answer in the documents for: What is the capital of France?",
                      FIRST_VIEW_S)  # fmt: skip
        wait_for_text(page, "The documents do not seem to cover this question.")
        assert "passages for" not in shown_text(page)
        page.get_by_text("Show the closest passages (3)").click()
        page.get_by_text("Relevance:").first.wait_for(timeout=STEP_S * 1000)
        labels = re.findall(r"Relevance: ([a-z ]+)", shown_text(page))
        assert len(labels) == 3
        assert set(labels) <= {"weak match", "hardly related"}, labels
        marks = page.locator(".stMarkdownColoredBackground:not(details *)")  # not in context
        assert marks.count() == 0  # nothing under a not-covered answer is marked as an answer
    finally:
        page.close()


CONTRAST = """() => {
    const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => [r, g, b].map((v) => {
        v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    }).reduce((acc, v, i) => acc + v * [0.2126, 0.7152, 0.0722][i], 0);
    const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p);
                              return (x + 0.05) / (y + 0.05); };
    const opaque = (el) => { for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length === 3 || c[3] === 1) return c.slice(0, 3); } return [255, 255, 255]; };
    return [...document.querySelectorAll('.stMarkdownColoredBackground')].map((m) => {
        const bg = rgb(getComputedStyle(m).backgroundColor);
        return {text: ratio(rgb(getComputedStyle(m).color).slice(0, 3), bg.slice(0, 3)),
                card: ratio(bg.slice(0, 3), opaque(m.parentElement)),
                alpha: bg.length === 4 ? bg[3] : 1};
    });
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_highlights_keep_aa_contrast_in_light_and_dark(server, browser, scheme, capsys):
    url, _ = server
    page = browser.new_page(viewport={"width": 1280, "height": 1400}, color_scheme=scheme)
    try:
        page.goto(f"{url}/?q=Could+my+back+pain+be+psychosomatic%3F")
        wait_for_text(page, "3 passages for", FIRST_VIEW_S)
        page.get_by_text("Show in context").first.click()  # the passage mark, too
        page.locator("details[open] .stMarkdownColoredBackground").first.wait_for()
        found = page.evaluate(CONTRAST)
        page.screenshot(path=str(OUTPUT / f"highlight-{scheme}.png"))
    finally:
        page.close()
    assert len(found) >= 2
    assert all(m["alpha"] == 1 for m in found)  # opaque: the ratio is what readers see
    worst = min(m["text"] for m in found)
    with capsys.disabled():
        print(f"\n{scheme}: text on marks {worst:.1f}:1 at worst, marks against the card "
              f"{min(m['card'] for m in found):.2f}:1 at worst")
    assert worst >= 4.5  # WCAG AA for text
    assert all(m["card"] > 1.2 for m in found)  # a mark is visibly a mark


SLEEP_MD = "# Sleep and back pain\n\nA firm mattress and sleeping on your side ease back pain.\n"


def test_add_a_document_then_remove_it(server, browser, tmp_path):
    url, index = server
    upload = tmp_path / "sleep.md"
    upload.write_text(SLEEP_MD, encoding="utf-8")
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    question = "Which mattress helps back pain at night?"
    try:
        page.goto(url)
        page.get_by_label("Your question").wait_for(timeout=FIRST_VIEW_S * 1000)
        page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(upload))
        wait_for_text(page, "Added sleep.md: 1 passage.", FIRST_VIEW_S)  # rebuilt, confirmed
        assert "Searching 3 documents" in shown_text(page)
        ask(page, question, "A firm mattress and sleeping on your side")
        first = page.get_by_role("link", name="Open in the document").first
        assert first.get_attribute("href").startswith("?doc=sleep.md&")

        sidebar = page.get_by_test_id("stSidebar")
        row = sidebar.get_by_test_id("stHorizontalBlock").filter(has_text="sleep.md")
        row.get_by_role("button", name="Remove").click()
        wait_for_text(page, "Remove sleep.md? The file is deleted")
        sidebar.get_by_role("button", name="Remove", exact=True).last.click()
        wait_for_text(page, "Removed sleep.md from the documents and the index.", FIRST_VIEW_S)
        assert "Searching 2 documents" in shown_text(page)
        ask(page, question, "for: " + question)
        assert "A firm mattress" not in shown_text(page)
        assert not (Path(server[1]).parent / "corpus" / "sleep.md").exists()
    finally:
        page.close()


def test_make_run_calls_out_to_nobody(tmp_path):
    """`make run`'s command (every interface, the project's .streamlit/config.toml) starts the
    page without asking a web service for the machine's public address: Streamlit does so by
    default when headless, and offline says "Did not auto detect external IP"."""
    port = free_port()
    env = dict(os.environ, QA_INDEX=str(tmp_path / "index"), HF_HUB_OFFLINE="1")
    log_path = tmp_path / "streamlit.log"
    with open(log_path, "w") as log:  # as the Makefile's run target: streamlit run app.py --port
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "URL:" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5) as r:
            assert r.status == 200
    finally:
        proc.terminate()
        proc.wait(10)
    shown = log_path.read_text()
    assert "URL: http://localhost:" in shown
    assert "external IP" not in shown and "External URL" not in shown, shown
