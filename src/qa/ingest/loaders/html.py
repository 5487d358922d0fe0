"""HTML (.html, .htm): the main content as plain text, headings kept as sections.

Parsed with BeautifulSoup (Python's own html.parser; the encoding comes from the BOM, the
`<meta charset>` or a guess). What is never indexed: scripts, styles, forms, embedded frames and
media; navigation, headers and footers of the page, sidebars; elements that are hidden or marked
as navigation, banners or dialogs (ARIA roles), and elements whose id or class names them as
boilerplate (cookie and consent banners, menus, breadcrumbs, share buttons, adverts, newsletters).
The content is `<main>` (or role="main"), else the largest `<article>`, else `<body>`.

Offsets index the extracted text; an HTML file has no source map (its markup is not text a reader
reads), the original file is offered for download instead.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from qa.ingest.loaders.base import Document, TextBuilder
from qa.ingest.text import normalize

if TYPE_CHECKING:  # pragma: no cover
    from bs4 import Tag

DROP_TAGS = (
    "script", "style", "noscript", "template", "iframe", "frame", "frameset", "object", "embed",
    "svg", "canvas", "video", "audio", "map", "form", "button", "input", "select", "textarea",
    "dialog", "nav", "aside", "footer", "menu", "head",
)  # fmt: skip
DROP_ROLES = {
    "navigation", "banner", "contentinfo", "complementary", "search", "dialog", "alertdialog",
    "menu", "menubar", "toolbar",
}  # fmt: skip
BOILERPLATE = re.compile(
    r"(?:^|[-_ ])(?:cookies?|consent|gdpr|privacy-banner|breadcrumbs?|sidebar|navbar|nav|menu|"
    r"share|sharing|social|newsletter|subscribe|advert|adverts|ads?|promo|popup|modal|"
    r"skip-link|related|comments?)(?:$|[-_ ])",
    re.I,
)
KEEP_ALWAYS = {"html", "body", "main", "article"}
HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
BLOCKS = {
    "p", "div", "section", "article", "main", "header", "blockquote", "pre", "figure",
    "figcaption", "address", "details", "summary", "dl", "dt", "dd", "center", "hr",
    "body", "html", "caption",
}  # fmt: skip
LISTS = {"ul", "ol", "table"}  # containers whose items (li, tr) are lines of one block


def _is_boilerplate(tag) -> bool:
    if tag.name in DROP_TAGS:
        return True
    if tag.name == "header" and not tag.find_parent(("article", "main")):
        return True  # the page's header (site name, menus); an article's header is content
    attrs = tag.attrs or {}
    if tag.name in KEEP_ALWAYS:
        return False
    if "hidden" in attrs or str(attrs.get("aria-hidden", "")).lower() == "true":
        return True
    if str(attrs.get("role", "")).lower() in DROP_ROLES:
        return True
    style = str(attrs.get("style", "")).replace(" ", "").lower()
    if "display:none" in style or "visibility:hidden" in style:
        return True
    classes = attrs.get("class") or []
    names = [str(attrs.get("id", ""))] + (classes if isinstance(classes, list) else [classes])
    return any(BOILERPLATE.search(name) for name in names if name)


def strip_boilerplate(soup) -> None:
    """Remove, in place, everything that is never indexed (see the module docstring).

    The tree is walked with a stack, not recursively, and nothing below a removed element is
    looked at: unclosed tags nest thousands deep (a page of 3,000 unclosed `<font>` tags), and
    bs4's `Tag.decomposed` searches the whole subtree for an attribute it lacks, which made
    such a page take minutes."""
    from bs4 import Comment, Declaration, Doctype, ProcessingInstruction, Tag

    for node in soup.find_all(
        string=lambda s: isinstance(s, Comment | Declaration | Doctype | ProcessingInstruction)
    ):
        node.extract()
    dropped, stack = [], [soup]
    while stack:
        for child in stack.pop().children:
            if isinstance(child, Tag):
                (dropped if _is_boilerplate(child) else stack).append(child)
    for tag in dropped:
        tag.decompose()


def main_content(soup):
    """The element that holds the page's content: <main>, the largest <article>, or <body>."""
    main = soup.find("main") or soup.find(attrs={"role": "main"})
    if main is not None:
        return main
    articles = soup.find_all("article")
    if articles:
        return max(articles, key=lambda a: len(a.get_text(" ", strip=True)))
    return soup.body or soup


BULLET = "\u2022 "  # starts a list item, as the Markdown loader writes it (a sentence break)


class Renderer:
    """Walks a content tree, writing paragraphs, list items and headings to a TextBuilder.

    List items are lines that start with a bullet ("• ", or "2. " in an ordered list) and table
    rows are lines of cells separated by " | ", so every item and row is a sentence of its own
    (`qa.ingest.text.sentence_spans`). With a stack rather than recursion: unclosed tags nest
    deeper than Python recurses."""

    def __init__(self) -> None:
        self.out = TextBuilder()
        self.line: list[str] = []  # inline text of the current paragraph
        self.nested = 0  # depth of lists and tables: their items are lines, not blocks
        self.lists: list[list] = []  # [tag name, items so far] of the lists we are in
        self.prefix = ""  # the bullet of a list item, written with its first text
        self.cells = 0  # depth of table cells: blocks in a cell stay on the row's line

    def flush(self) -> None:
        text = "\n".join(normalize(part) for part in "".join(self.line).split("\n"))
        text = text.strip()
        self.line = []
        if text:
            self.out.separate("\n" if self.nested else "\n\n")
            self.out.add(self.prefix + text)
            self.prefix = ""

    def visit(self, root) -> None:
        """Render `root` and everything below it."""
        stack = [(root, False)]
        while stack:
            node, leaving = stack.pop()
            if leaving:
                self._leave(node.name)
            elif self._enter(node):
                stack.append((node, True))
                stack.extend((child, False) for child in reversed(list(node.children)))

    def _enter(self, node) -> bool:
        """What an element does before its children; whether they are rendered."""
        from bs4 import NavigableString, Tag

        if isinstance(node, NavigableString):
            self.line.append(re.sub(r"\s+", " ", str(node)))  # source line breaks are spaces
            return False
        if not isinstance(node, Tag):
            return False
        name = node.name
        if name in HEADINGS:
            self.flush()
            title = normalize(node.get_text(" "))
            if title:
                self.out.heading(title)
            return False
        if name == "br":
            self.line.append("\n")
            return False
        if name == "img":
            return False
        if name == "pre":
            self.flush()
            self.out.separate()
            self.out.add(node.get_text().strip("\n"))
            self.out.separate()
            return False
        if name in LISTS:
            self.flush()
            self.out.separate("\n\n" if not self.nested else "\n")
            self.nested += 1
            if name != "table":
                self.lists.append([name, 0])
        elif name == "li":
            self.flush()
            if self.lists:
                self.lists[-1][1] += 1
            ordered = self.lists and self.lists[-1][0] == "ol"
            self.prefix = f"{self.lists[-1][1]}. " if ordered else BULLET
        elif name in ("td", "th"):
            self.cells += 1
            if node.find_previous_sibling(("td", "th")) is not None:
                self.line.append(" | ")
        elif self.cells and name in BLOCKS:
            self.line.append(" ")  # paragraphs in a cell: the cell's text, on the row's line
        elif name == "tr" or name in BLOCKS:
            self.flush()
        return True  # (inline elements: a, span, em, strong, code, ...: just their children)

    def _leave(self, name: str) -> None:
        """What an element does after its children."""
        if name in LISTS:
            self.flush()
            self.nested -= 1
            if name != "table" and self.lists:
                self.lists.pop()
            self.out.separate("\n\n" if not self.nested else "\n")
        elif name in ("td", "th"):
            self.cells -= 1
        elif self.cells and name in BLOCKS:
            self.line.append(" ")
        elif name in ("li", "tr") or name in BLOCKS:
            self.flush()
            self.prefix = "" if name == "li" else self.prefix


def parse(markup: bytes | str) -> tuple[Tag, str]:
    """The page's tree, with what is never indexed removed (see the module text), and its
    title: the <title>, cut to its <h1> when it holds it."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(markup, "html.parser")
    title = normalize(soup.title.get_text(" ")) if soup.title is not None else ""
    strip_boilerplate(soup)
    root = main_content(soup)
    h1 = root.find("h1")
    heading = normalize(h1.get_text(" ")) if h1 is not None else ""
    if heading and (not title or heading in title):  # "Posture | Site name" -> "Posture"
        title = heading
    return root, title


def from_markup(path: str, markup: bytes | str, data: bytes, kind: str) -> Document:
    """The Document of an HTML rendering of a file (`data`: the file's own bytes, for its hash;
    `kind`: what the file is)."""
    root, title = parse(markup)
    renderer = Renderer()
    renderer.visit(root)
    renderer.flush()
    return renderer.out.document(path, data, kind, title)


def load(path: str, data: bytes) -> Document:
    """An HTML page's main content, titled by its <title> (cut to its <h1> when it holds it).

    Raises:
        ValueError: the file looks binary.
    """
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValueError("binary file")
    return from_markup(path, data, data, "html")
