"""A real screenshot of the page for the README: the shipped report, a question asked, in
Debian's Chromium at a desktop size (1280x900).

    .venv/bin/python scripts/screenshot.py            # writes docs/screenshot.png
    .venv/bin/python scripts/screenshot.py --out x.png --question "Should I get a second opinion?"

It starts `streamlit run app.py` on a free port over a copy of `corpus/` with a fresh index in
a temporary folder (the checkout's own index is left alone), lets a first view build the index,
then opens the page with the question in its link, waits for the answer and saves the view.
`serve` is also how the browser tests start the page (tests/conftest.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")  # Debian's (bash scripts/ensure-chromium.sh installs it)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SIZE = {"width": 1280, "height": 900}
QUESTION = "What causes chronic mid back pain?"
ANSWER_S = 240  # server start, model load and index build on a busy machine


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(corpus: Path, index: Path, log_path: Path, start_s: float = 60) -> Iterator[str]:
    """`streamlit run app.py` over `corpus` and `index` on a free port, until the block ends.

    Yields the page's URL once the server answers its health check. Raises RuntimeError (with
    the server's log) when it exits or does not answer within `start_s` seconds.
    """
    port = free_port()
    env = dict(os.environ, QA_INDEX=str(index), QA_CORPUS=str(corpus), HF_HUB_OFFLINE="1")
    command = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
        "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited ({proc.returncode}):\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not answer on {url}:\n{log_path.read_text()}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def take(browser, url: str, out: Path, question: str = QUESTION) -> None:
    """Save the page at `url` with `question` asked and answered, as a desktop shows it.

    Args:
        browser: a Playwright Chromium browser.
        url: the page's address.
        out: the PNG file to write.
        question: the question asked (through the page's link, `?q=...`).
    """
    page = browser.new_page(viewport=SIZE, color_scheme="light")
    try:
        page.goto(f"{url}/?{urlencode({'q': question})}")
        page.get_by_text("Relevance:").first.wait_for(timeout=ANSWER_S * 1000)
        page.wait_for_timeout(500)  # the last elements settle (fonts, the bars' fill)
        out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(out))
    finally:
        page.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    parser.add_argument("--question", default=QUESTION)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as work:
        corpus = Path(work) / "corpus"
        shutil.copytree(ROOT / "corpus", corpus)
        with serve(corpus, Path(work) / "index", Path(work) / "streamlit.log") as url:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    first = browser.new_page()  # the first view builds the index: done before
                    first.goto(url)
                    first.get_by_label("Your question").wait_for(timeout=ANSWER_S * 1000)
                    first.close()
                    take(browser, url, args.out, args.question)
                finally:
                    browser.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
