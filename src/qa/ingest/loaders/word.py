"""Word documents (.docx): converted to HTML by mammoth, then read as HTML (`html.py`).

mammoth keeps what a reader reads and the structure a reader cites: paragraphs styled as
headings ("Heading 1" to "Heading 6", and "Title") become headings, hence sections; numbered and
bulleted paragraphs become list items and tables stay tables, so every item and row is a
sentence of its own. What it leaves out is what should not be indexed: headers and footers,
comments, and text deleted with track changes (insertions are kept); images are dropped without
being read. Footnotes and endnotes come last, as a list.

A file that is not a Word document is refused with what it is (`sniff.py`), before mammoth
reads it; so are a password-protected one and a zip bomb (`archive.py`).
"""

from __future__ import annotations

from qa.ingest.loaders import html
from qa.ingest.loaders.archive import damaged, open_zip
from qa.ingest.loaders.base import Document

STYLE_MAP = "p[style-name='Title'] => h1:fresh\np[style-name='Subtitle'] => h2:fresh"


def load(path: str, data: bytes) -> Document:
    """A Word document's text, headings as sections.

    Raises:
        ValueError: not a Word document, password-protected, damaged, or too large inflated.
    """
    import mammoth

    archive = open_zip(data, "a Word document (.docx)", "word/document.xml")
    no_images = mammoth.images.img_element(lambda image: {})  # never read an image's bytes
    try:
        result = mammoth.convert_to_html(archive.fp, style_map=STYLE_MAP,
                                         convert_image=no_images)  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - zip, zlib and XML errors of a damaged part
        raise damaged(exc) from None
    return html.from_markup(path, f"<main>{result.value}</main>", data, "docx")
