"""OpenDocument text (.odt), read with odfpy, then rendered as HTML and read as such (`html.py`).

The body is walked in document order: headings (`text:h`, with their outline level) become
headings, hence sections; paragraphs stay paragraphs; list items and table rows become lines of
their own (each a sentence); sections and text boxes are read through. Left out, as in Word
documents: headers and footers (they live in the styles, not the body), comments (annotations),
text deleted with track changes, and generated indexes (a table of contents repeats the
headings). Footnotes come last, as a list. A password-protected file is refused with that reason.
"""

from __future__ import annotations

from html import escape

from qa.ingest.loaders import html
from qa.ingest.loaders.archive import damaged, open_zip
from qa.ingest.loaders.base import Document

TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
MIMETYPE = "application/vnd.oasis.opendocument.text"

# elements whose content is never indexed
SKIP = {
    (TEXT, "tracked-changes"), (OFFICE, "annotation"), (OFFICE, "annotation-end"),
    (TEXT, "note-citation"), (TEXT, "table-of-content"), (TEXT, "illustration-index"),
    (TEXT, "alphabetical-index"), (TEXT, "object-index"), (TEXT, "user-index"),
    (TEXT, "bibliography"), (TEXT, "table-index"), (TABLE, "covered-table-cell"),
    (TEXT, "sequence-decls"), (TEXT, "variable-decls"), (TEXT, "user-field-decls"),
}  # fmt: skip
# element -> the HTML element it becomes (the rest: just their content)
TAGS = {
    (TEXT, "p"): "p", (TEXT, "list"): "ul", (TEXT, "list-item"): "li",
    (TEXT, "list-header"): "li", (TABLE, "table"): "table", (TABLE, "table-row"): "tr",
    (TABLE, "table-cell"): "td", (TEXT, "line-break"): "br",
}  # fmt: skip


def load(path: str, data: bytes) -> Document:
    """An OpenDocument text's body, headings as sections.

    Raises:
        ValueError: not an OpenDocument text, password-protected, damaged, or too large.
    """
    from odf.opendocument import load as load_odf

    archive = open_zip(data, "an OpenDocument text (.odt)", "content.xml")
    try:
        if _member(archive, "mimetype")[:100].strip() != MIMETYPE.encode():
            from qa.ingest.loaders.sniff import not_a

            raise not_a("an OpenDocument text (.odt)", data)
        if b"encryption-data" in _member(archive, "META-INF/manifest.xml"):
            raise ValueError("password-protected (encrypted) document: save it without a "
                             "password")  # fmt: skip
        body = load_odf(archive.fp).text
        markup = to_html(body)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - XML and package errors of a damaged part
        raise damaged(exc) from None
    return html.from_markup(path, markup, data, "odt")


def to_html(body) -> str:
    """The body (office:text) as simple HTML, walked with a stack (lists nest deeply); its
    footnotes follow, as a list."""
    parts: list[str] = ["<main>"]
    notes: list = []
    stack: list = [body]
    while stack or notes:
        if not stack:  # the body is done: its footnotes follow
            sequence = ["<ul>"]
            for note in notes:
                sequence += ["<li>", *note.childNodes, "</li>"]
            stack, notes = list(reversed([*sequence, "</ul>"])), []
        node = stack.pop()
        if isinstance(node, str):  # markup written as it is (a closing tag)
            parts.append(node)
            continue
        if node.nodeType == node.TEXT_NODE:
            parts.append(escape(node.data))
            continue
        name = node.qname
        if name in SKIP:
            continue
        if name == (TEXT, "note"):
            notes.extend(c for c in node.childNodes if c.qname == (TEXT, "note-body"))
            continue
        if name in ((TEXT, "s"), (TEXT, "tab")):
            parts.append(" ")
            continue
        tag = TAGS.get(name)
        if name == (TEXT, "h"):
            level = _attribute(node, TEXT, "outline-level") or "1"
            tag = f"h{min(6, max(1, int(level) if level.isdigit() else 1))}"
        if tag == "br":
            parts.append("<br>")
            continue
        if tag:
            parts.append(f"<{tag}>")
            stack.append(f"</{tag}>")
        stack.extend(reversed(node.childNodes))
    parts.append("</main>")
    return "".join(parts)


def _member(archive, name: str) -> bytes:
    """An archive member's bytes, or b"" when it has none of that name."""
    return archive.read(name) if name in archive.NameToInfo else b""


def _attribute(node, namespace: str, name: str) -> str | None:
    value = node.attributes.get((namespace, name))
    return str(value) if value is not None else None
