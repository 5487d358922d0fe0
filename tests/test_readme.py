"""The README is the front door: short, with the page's picture, and every link in it and in
docs/ leads somewhere (a file that exists, a heading that exists, by GitHub's anchor rules)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
MAX_README_LINES = 400

FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"(!?)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$", re.M)


def prose(text: str) -> str:
    """The text without fenced code blocks and code spans: links there are not links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text lower-cased, punctuation dropped (letters,
    digits, "_", "-" and spaces kept), spaces turned into hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor of a Markdown file's headings; a repeated one gets -1, -2... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for _, title in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        base = slug(title)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[tuple[bool, str]]:
    """(is an image, target) of every Markdown link in a file's prose."""
    return [(bang == "!", target) for bang, target in LINK.findall(prose(path.read_text("utf-8")))]


def is_external(target: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I) is not None


def test_slug_follows_githubs_rules():
    assert slug("HTTP API: `qa serve`") == "http-api-qa-serve"
    assert slug('How "answered" is decided') == "how-answered-is-decided"
    assert slug("Asking one document, or a few: `--doc PATTERN`") == (
        "asking-one-document-or-a-few---doc-pattern")
    assert slug("Scanned pages and images (OCR)") == "scanned-pages-and-images-ocr"
    assert slug("QA_CACHE and [the guide](x.md)") == "qa_cache-and-the-guide"


def test_links_in_code_are_not_links(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# T\n\n[a](a.md) `[b](b.md)`\n\n```\n[c](c.md)\n```\n![d](d.png)\n")
    assert links(page) == [(False, "a.md"), (True, "d.png")]
    assert anchors(page) == {"t"}


def test_the_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines"


def test_the_readme_shows_the_screenshot_of_the_page():
    images = [target for image, target in links(README) if image]
    assert "docs/screenshot.png" in images
    assert (ROOT / "docs" / "screenshot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_readme_links_every_docs_file():
    linked = {(ROOT / target.split("#")[0]).resolve() for _, target in links(README)
              if not is_external(target)}  # fmt: skip
    assert DOCS, "no docs/*.md"
    missing = [doc.name for doc in DOCS if doc.resolve() not in linked]
    assert not missing, f"docs not linked from README.md: {missing}"


def test_every_docs_file_opens_with_a_title_and_an_intro():
    for doc in DOCS:
        blocks = doc.read_text(encoding="utf-8").split("\n\n")
        assert blocks[0].startswith("# ") and "\n" not in blocks[0], doc.name
        assert blocks[1].strip() and not blocks[1].startswith("#"), doc.name


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_anchor_exists(page):
    broken = []
    for _, target in links(page):
        if is_external(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest}")
        elif anchor and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, "\n".join(broken)
