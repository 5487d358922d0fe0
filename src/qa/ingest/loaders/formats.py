"""Which loader reads which file type, and reading one file's bytes in this process.

`parse_bytes` has no bound of its own: the build and the page call it through
`qa.ingest.loaders.sandbox`, which runs it in a child process with a memory and a time limit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qa.ingest.loaders import ebook, html, image, markdown, opendocument, pdf, plain, slides, word
from qa.ingest.loaders.base import Document

Loader = Callable[[str, bytes], Document]

# file suffix (lower case) -> (kind, loader)
LOADERS: dict[str, tuple[str, Loader]] = {
    ".txt": ("text", plain.load),
    ".md": ("markdown", markdown.load),
    ".markdown": ("markdown", markdown.load),
    ".html": ("html", html.load),
    ".htm": ("html", html.load),
    ".pdf": ("pdf", pdf.load),
    ".docx": ("docx", word.load),
    ".pptx": ("pptx", slides.load),
    ".odt": ("odt", opendocument.load),
    ".epub": ("epub", ebook.load),
    ".png": ("image", image.load),
    ".jpg": ("image", image.load),
    ".jpeg": ("image", image.load),
    ".tif": ("image", image.load),
    ".tiff": ("image", image.load),
}
SUPPORTED_SUFFIXES = {suffix: kind for suffix, (kind, _) in LOADERS.items()}


def parse_bytes(rel: str, data: bytes) -> Document:
    """The `Document` of a file's bytes, read here (no limit: see the module text).

    Raises:
        ValueError: an unsupported type, or a file its loader cannot read (the reason says why).
    """
    suffix = Path(rel).suffix.lower()
    if suffix not in LOADERS:
        raise ValueError(f"unsupported file type {suffix or '(none)'}")
    try:
        return LOADERS[suffix][1](rel, data)
    except RecursionError:  # a parser's recursion on a pathological file, never the build's
        raise ValueError("nested too deeply to read") from None
