"""EPUB books (.epub), read with ebooklib: the chapters in spine order, through the HTML reader.

The spine (the book's reading order) decides the order of the chapters; each chapter's XHTML is
read as an HTML page is (`html.py`: boilerplate dropped, headings, list items and table rows
kept) and starts under its title as a heading (from the table of contents, else the chapter's
own first heading or <title>), so a passage's section names its chapter. The navigation
document (a generated table of contents) is left out. A chapter that is not text (encrypted:
DRM) is refused with that reason.
"""

from __future__ import annotations

import posixpath
import warnings

from qa.ingest.loaders import html
from qa.ingest.loaders.archive import damaged, open_zip
from qa.ingest.loaders.base import Document
from qa.ingest.text import normalize


def load(path: str, data: bytes) -> Document:
    """A book's chapters in reading order, each under its title.

    Raises:
        ValueError: not an EPUB, encrypted (DRM), damaged, or too large inflated.
    """
    from ebooklib import epub

    archive = open_zip(data, "an EPUB book (.epub)", "META-INF/container.xml")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            book = epub.read_epub(archive.fp, {"ignore_ncx": False})
        titles = toc_titles(book.toc)
        renderer = html.Renderer()
        for idref, _linear in book.spine:
            item = book.get_item_with_id(idref)
            if item is None or isinstance(item, epub.EpubNav) or not item.file_name:
                continue
            _chapter(renderer, item.get_content(), titles.get(item.file_name, ""))
        title = normalize(" ".join(t for t, _ in book.get_metadata("DC", "title")))
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - XML and package errors of a damaged part
        raise damaged(exc) from None
    return renderer.out.document(path, data, "epub", title)


def _chapter(renderer: html.Renderer, content: bytes, title: str) -> None:
    """Render one chapter under its title."""
    head = content[:8192]
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"<" not in head:
        raise ValueError("a chapter is not text: an encrypted (DRM) or damaged book")
    root, page_title = html.parse(content)
    first = root.find(list(html.HEADINGS))
    own = normalize(first.get_text(" ")) if first is not None else ""
    title = title or own or page_title
    renderer.flush()
    if title and title != own:
        renderer.out.heading(title)
    renderer.visit(root)
    renderer.flush()


def toc_titles(toc) -> dict[str, str]:
    """Chapter file -> its title in the table of contents (the first entry that names it)."""
    titles: dict[str, str] = {}
    stack = list(reversed(list(toc)))
    while stack:
        entry = stack.pop()
        if isinstance(entry, tuple | list):  # (section, [children])
            stack.extend(reversed(list(entry)))
            continue
        href = getattr(entry, "href", "") or ""
        name = posixpath.normpath(href.split("#", 1)[0]) if href else ""
        if name and name not in titles:
            titles[name] = normalize(getattr(entry, "title", "") or "")
    return titles
