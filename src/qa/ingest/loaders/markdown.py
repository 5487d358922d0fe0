"""Markdown (.md): rendered to plain text, with a source map back to the file.

The file is parsed with markdown-it-py (CommonMark, plus tables and strikethrough). What a reader
reads is kept: heading text (a block of its own, recorded as a heading), paragraphs, list items
(one per line: a bullet item starts with "• ", an ordered item keeps its number, so that every
item is a sentence of its own), table rows (cells separated by " | ") and the text of HTML blocks.
A link keeps its text followed by its address in brackets, "the guide (https://example.org)"
(not for links to a place in the same page, "#...", nor when the text is the address). Markup is
dropped: `#`, emphasis markers, link and image syntax (an image is dropped), backticks, escapes,
front matter. Code blocks (fenced or indented) are left out: code is not prose, and embedded as
prose it only blurs the passages around it; inline `code` stays as text.

Every character copied from the file is located in it, so `Document.source_span` maps any passage
back to its place in the file (bullets, separators and the address of a reference link, whose
definition stands elsewhere in the file, are inserted, not copied).

A file nested deeper than the parser follows (`MAX_NESTING` levels: a list 49 items deep, a
quote 99 deep) is read as plain text instead, with a warning: the parser stops there and drops
the rest of the file, text after the deep part included, without a word.
"""

from __future__ import annotations

import logging
import re

from qa.ingest.loaders import plain
from qa.ingest.loaders.base import Document, TextBuilder
from qa.ingest.loaders.plain import decode_text

log = logging.getLogger(__name__)

BULLET = "\u2022 "  # starts a bullet list item in the loaded text (a sentence break, see text.py)

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)?(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)
_FRONT_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.M)
_HTML_TAG = re.compile(r"<!--.*?-->|<(script|style)\b.*?</\1\s*>|<[^>]*>", re.S | re.I)
_ALIGN_WINDOW = 16  # how far ahead of the cursor kept text is looked for
_SKIPPABLE = frozenset(" \t\r\n>#*+-_`~|=")  # block markers and white space before kept text

MAX_NESTING = 100  # block levels the parser follows (markdown-it's default, 20, dropped the
# rest of a file after a list 10 deep); 1,000 ran out of Python's recursion
_parser = None


def _markdown_parser():
    global _parser
    if _parser is None:
        from markdown_it import MarkdownIt

        _parser = MarkdownIt("commonmark", {"html": True, "maxNesting": MAX_NESTING}).enable(
            ["table", "strikethrough"])
    return _parser


class _Aligner:
    """Writes rendered text, locating each character in the source, left to right.

    A cursor walks the source. Markup that rendering drops (emphasis markers, link and image
    syntax, raw inline HTML) is stepped over explicitly, so the cursor stands at (or just
    before) the next kept text. Text found there verbatim, after nothing but block markers and
    white space, is one run; otherwise (escapes, entities) each character is located at its
    next occurrence close ahead, and a character not found is written without a source.
    """

    def __init__(self, source: str, out: TextBuilder) -> None:
        self.source = source
        self.out = out
        self.pos = 0  # the cursor: source position after the last consumed character

    def goto(self, lo: int) -> None:
        """Move the cursor forward to `lo` (a block's first line); never backwards."""
        self.pos = max(self.pos, lo)

    def text(self, piece: str, hi: int) -> None:
        """Write `piece`, copied from source[cursor:hi]."""
        if not piece:
            return
        found = self.source.find(piece, self.pos, min(hi, self.pos + _ALIGN_WINDOW + len(piece)))
        if found >= 0 and _SKIPPABLE.issuperset(self.source[self.pos : found]):
            self.out.add(piece, found)
            self.pos = found + len(piece)
            return
        for ch in piece:
            j = self.source.find(ch, self.pos, min(hi, self.pos + _ALIGN_WINDOW))
            if j >= 0:
                self.out.add(ch, j)
                self.pos = j + 1
            else:
                self.out.add(ch)

    def skip(self, markup: str, hi: int) -> None:
        """Step over `markup` (e.g. "**") when it comes next in the source."""
        if not markup:
            return
        j = self.source.find(markup, self.pos, min(hi, self.pos + _ALIGN_WINDOW + len(markup)))
        if j >= 0:
            self.pos = j + len(markup)

    def skip_brackets(self, hi: int) -> None:
        """Step over "[...]" starting at the cursor's next "[" (nested brackets included)."""
        self.skip("[", hi)
        depth = 1
        while self.pos < hi and depth:
            ch = self.source[self.pos]
            if ch == "\\":
                self.pos += 1
            depth += {"[": 1, "]": -1}.get(ch, 0)
            self.pos += 1

    def skip_link_target(self, hi: int) -> None:
        """After a link's text: step over "](url)", "][ref]" or the closing "]"."""
        j = self.source.find("]", self.pos, min(hi, self.pos + _ALIGN_WINDOW))
        if j < 0:
            return
        self.pos = j + 1
        if self.source.startswith("(", self.pos):
            depth = 0
            while self.pos < hi:
                depth += {"(": 1, ")": -1}.get(self.source[self.pos], 0)
                self.pos += 1
                if depth == 0:
                    break
        elif self.source.startswith("[", self.pos):
            k = self.source.find("]", self.pos, hi)
            self.pos = k + 1 if k >= 0 else self.pos


def _blank_front_matter(text: str) -> tuple[str, str]:
    """Front matter replaced by spaces (offsets unchanged), and its `title:` if any."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return text, ""
    title = _FRONT_TITLE.search(match.group(0))
    blanked = re.sub(r"[^\n]", " ", match.group(0))
    name = title.group(1).strip("\"'") if title else ""
    return blanked + text[match.end() :], name


class TooDeep(ValueError):
    """The file nests deeper than `MAX_NESTING`: the parser would drop part of it."""


def render(text: str) -> tuple[TextBuilder, str]:
    """Render Markdown source to plain text.

    Returns:
        The builder holding the text, headings and source map; and the front matter title ("").

    Raises:
        TooDeep: see the module text.
    """
    body, front_title = _blank_front_matter(text)
    tokens = _markdown_parser().parse(body)
    if tokens and max(token.level for token in tokens) >= MAX_NESTING - 1:
        raise TooDeep(f"nested more than {MAX_NESTING} levels deep")
    line_starts = [0] + [m.end() for m in re.finditer(r"\n", body)]

    def span(token) -> tuple[int, int]:
        if not token.map:
            return align.pos, len(body)
        first, last = token.map
        return line_starts[first], line_starts[last] if last < len(line_starts) else len(body)

    out = TextBuilder()
    align = _Aligner(body, out)
    lists = 0
    heading_start = 0
    first_cell = False
    item_start = False  # just after a list item's marker: its first paragraph stays on the line
    for index, token in enumerate(tokens):
        kind = token.type
        fresh_item, item_start = item_start, False
        if kind in ("bullet_list_open", "ordered_list_open"):
            out.separate("\n\n" if not lists else "\n")
            lists += 1
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists -= 1
            out.separate("\n\n" if not lists else "\n")
        elif kind == "list_item_open":
            out.separate("\n")
            item_start = True
            if token.info:  # an ordered item keeps its number
                lo, hi = span(token)
                align.goto(lo)
                align.text(f"{token.info}{token.markup} ", hi)
            elif _item_has_text(tokens, index):  # no bullet alone for an item of only an image
                out.add(BULLET)
        elif kind == "heading_open":
            out.separate()
            heading_start = out.length
        elif kind == "heading_close":
            out.mark_heading(heading_start)
            out.separate()
        elif kind == "paragraph_open":
            if not fresh_item:
                out.separate("\n" if lists else "\n\n")
        elif kind == "paragraph_close" and not lists:
            out.separate()
        elif kind == "inline":
            _inline(token, align, *span(token))
        elif kind in ("fence", "code_block"):  # left out (see the module text)
            align.goto(span(token)[1])
        elif kind == "html_block":
            lo, hi = span(token)
            _html_text(body, lo, hi, out)
        elif kind == "tr_open":
            out.separate("\n")
            first_cell = True
        elif kind in ("th_open", "td_open"):
            if not first_cell:
                out.add(" | ")
            first_cell = False
        elif kind in ("table_open", "table_close", "hr", "blockquote_open", "blockquote_close"):
            out.separate()
    return out, front_title


def _item_has_text(tokens, start: int) -> bool:
    """Whether the list item opened at tokens[start] shows any text of its own."""
    depth = 0
    for token in tokens[start:]:
        if token.type == "list_item_open":
            depth += 1
        elif token.type == "list_item_close":
            depth -= 1
            if depth == 0:
                return False
        elif token.type == "inline" and any(
            c.type in ("text", "code_inline") and c.content.strip() for c in token.children or []
        ):
            return True
    return False


def _inline(token, align: _Aligner, lo: int, hi: int) -> None:
    """The text of an inline token: text and code kept, breaks as new lines, markup stepped over."""
    align.goto(lo)
    links: list[tuple[str, int]] = []  # open links: (address, where their text starts)
    for child in token.children or []:
        kind = child.type
        if kind == "text":
            align.text(child.content, hi)
        elif kind == "code_inline":
            align.skip(child.markup, hi)
            align.text(child.content, hi)
            align.skip(child.markup, hi)
        elif kind in ("softbreak", "hardbreak"):
            align.text("\n", hi)
        elif kind in ("strong_open", "strong_close", "em_open", "em_close", "s_open", "s_close"):
            align.skip(child.markup, hi)
        elif kind == "link_open":
            links.append((str(child.attrGet("href") or ""), align.out.length))
            align.skip("<" if child.markup == "autolink" else "[", hi)
        elif kind == "link_close":
            href, text_start = links.pop() if links else ("", align.out.length)
            if child.markup == "autolink":
                align.skip(">", hi)
            else:
                target = align.pos
                align.skip_link_target(hi)
                _address(align, href, text_start, target)
        elif kind == "image":  # dropped: its alt text and target are stepped over
            align.skip("!", hi)
            align.skip_brackets(hi)
            align.pos -= 1  # back onto the closing "]" for skip_link_target
            align.skip_link_target(hi)
        elif kind == "html_inline":
            align.skip(child.content, hi)


def _address(align: _Aligner, href: str, text_start: int, target: int) -> None:
    """Write " (address)" after a link's text (see the module text for when).

    The address is copied from the link's own target, source[target:cursor], as written there;
    a reference link's address, defined elsewhere in the file, is inserted.
    """
    shown = _markdown_parser().normalizeLinkText(href)
    if not href or href.startswith("#"):
        return
    text = align.out.since(text_start)
    if " ".join(text.split()) in (href, shown, shown.removeprefix("mailto:")):
        return
    out = align.out
    out.add(" (")
    for written in (shown, href):
        found = align.source.find(written, target, align.pos)
        if found >= 0:
            out.add(written, found)
            break
    else:
        out.add(shown)
    out.add(")")


def _html_text(source: str, lo: int, hi: int, out: TextBuilder) -> None:
    """The text of an HTML block: tags, comments, scripts and styles dropped."""
    out.separate()
    pos = lo
    for match in list(_HTML_TAG.finditer(source, lo, hi)) + [None]:
        end = match.start() if match else hi
        segment = source[pos:end]
        if segment.strip():
            offset = len(segment) - len(segment.lstrip())
            out.add(segment.strip(), pos + offset)
            out.add(" ")
        pos = match.end() if match else hi
    out.separate()


def load(path: str, data: bytes) -> Document:
    """A Markdown document, rendered; its title is the front matter title or first heading.

    Raises:
        ValueError: binary, or text in an encoding that cannot be told.
    """
    text, encoding = decode_text(data)
    try:
        out, title = render(text)
    except TooDeep as exc:
        log.warning("%s is %s; read as plain text", path, exc)
        return plain.load(path, data)
    if not title and out.headings:
        first_start, first_end = out.headings[0]
        title = " ".join(out.text()[first_start:first_end].split())
    return out.document(path, data, "markdown", title, metadata={"encoding": encoding})
