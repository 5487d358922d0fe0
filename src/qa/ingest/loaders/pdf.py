"""PDF (.pdf): text in reading order, page by page, with paragraphs and headings from the layout.

pypdf extracts each page's text in content-stream order (the order the producer wrote it, which
is the reading order for nearly every generator, columns included) and reports, for each piece,
its position, font and size; `layout.py` finds paragraphs, headings and running headers and
footers from those.

Pages whose text layer is (nearly) empty and that show an image are rendered with PDFium and
recognised (OCR, `ocr.py`); their lines go through the same steps, so a PDF that mixes typed and
scanned pages reads both.

Every page starts a new block, so a passage never spans two pages and its page number is exact.
The title comes from the PDF's metadata, else its first heading, else the file name. Offsets index
the extracted text (a PDF has no text source to map back to); the page number locates a passage.
"""

from __future__ import annotations

import io
import logging
import math
import re

from qa.ingest.loaders import ocr
from qa.ingest.loaders.base import Document
from qa.ingest.loaders.layout import Line, largest_first_heading, layout
from qa.ingest.text import normalize

_BOLD = re.compile(r"bold|black|heavy|semibold|demi", re.I)
_JUNK_TITLE = re.compile(r"^(untitled|document\d*|microsoft word.*|.*\.(docx?|pdf|tex|dvi))$", re.I)


def _matrix_product(a: list[float], b: list[float]) -> list[float]:
    """Product of two PDF matrices [a b c d e f]."""
    return [
        a[0] * b[0] + a[1] * b[2],
        a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2],
        a[2] * b[1] + a[3] * b[3],
        a[4] * b[0] + a[5] * b[2] + b[4],
        a[4] * b[1] + a[5] * b[3] + b[5],
    ]


def page_lines(page) -> list[Line]:
    """The lines of a pypdf page, in content-stream order, with position, size and weight."""
    lines: list[Line] = []
    pieces: list[tuple[str, float | None, float, str]] = []  # (text, y, size, font) of a line

    def finish() -> None:
        text = "".join(p[0] for p in pieces)
        if text.strip():
            placed = [p for p in pieces if p[0].strip()]
            main = max(placed, key=lambda p: len(p[0].strip()))
            y = next((p[1] for p in placed if p[1] is not None), None)
            lines.append(Line(normalize(text), y, main[2], bool(_BOLD.search(main[3]))))
        pieces.clear()

    def visit(text, cm, tm, font, size) -> None:
        m = _matrix_product(list(tm), list(cm))
        scale = math.hypot(m[2], m[3]) or 1.0
        y = m[5] if any(tm[4:6]) else None
        name = str((font or {}).get("/BaseFont", ""))
        parts = text.split("\n")
        for i, part in enumerate(parts):
            if i:
                finish()
            if part:
                pieces.append((part, y, float(size or 0) * scale, name))

    page.extract_text(visitor_text=visit)
    finish()
    return lines


def _metadata_title(reader) -> str:
    try:
        title = normalize(str((reader.metadata or {}).get("/Title") or ""))
    except Exception:  # noqa: BLE001 - damaged metadata is no reason to lose the text
        return ""
    return "" if _JUNK_TITLE.match(title) else title


MIN_TEXT_CHARS = 20  # a page with fewer letters and digits in its text layer may be a scan


def needs_ocr(lines: list[Line]) -> bool:
    """Whether a page's text layer holds (almost) nothing: then its image is recognised."""
    return sum(ch.isalnum() for line in lines for ch in line.text) < MIN_TEXT_CHARS


def recognise_pages(data: bytes, numbers: list[int]) -> dict[int, list[Line]]:
    """OCR of the pages `numbers` (0-based) that show an image, rendered with PDFium.

    Returns:
        page number -> its recognised lines (pages without any image are left out).
    """
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    document = pdfium.PdfDocument(data)
    try:
        scans = [n for n in numbers
                 if any(document[n].get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE]))]
        found: dict[int, list[Line]] = {}
        ocr.report(0, len(scans))
        for done, n in enumerate(scans, 1):
            page = document[n]
            width, height = page.get_size()
            scale = min(ocr.DPI / 72, math.sqrt(ocr.MAX_PIXELS / max(1.0, width * height)))
            image = page.render(scale=scale, grayscale=True).to_pil()
            found[n] = ocr.recognise(image, 72 * scale)
            ocr.report(done, len(scans))
        return found
    finally:
        document.close()


def load(path: str, data: bytes) -> Document:
    """A PDF's text, page by page, with headings; `Document.pages` says where each page starts.
    Pages without a text layer that show an image are recognised (OCR, `qa.ingest.loaders.ocr`);
    `metadata["ocr_pages"]` counts them.

    Raises:
        ValueError: not a readable PDF, encrypted with a password, or without any text.
    """
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed-but-readable files are common
    if b"%PDF-" not in data[:1024]:
        from qa.ingest.loaders.sniff import not_a

        raise not_a("a PDF", data)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ValueError("encrypted PDF (needs a password)")
        pages = [page_lines(page) for page in reader.pages]
    except (ValueError, MemoryError, RecursionError):  # (the last two: the reader names them)
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many kinds on damaged files
        raise ValueError(f"unreadable PDF ({exc.__class__.__name__})") from None
    empty = [n for n, lines in enumerate(pages) if needs_ocr(lines)]
    try:
        recognised = recognise_pages(data, empty) if empty else {}
    except (ValueError, MemoryError, RecursionError):
        raise
    except Exception as exc:  # noqa: BLE001 - PDFium's errors on a page it cannot render
        raise ValueError(f"unreadable scanned page ({exc.__class__.__name__})") from None
    for n, lines in recognised.items():
        pages[n] = lines
    out, headings = layout(pages)
    if not out.text().strip():
        raise ValueError("no text to extract (a scanned PDF?)" if not recognised
                         else "no text found, not even by OCR")  # fmt: skip
    title = _metadata_title(reader) or largest_first_heading(headings)
    metadata = {"pages": len(pages), **({"ocr_pages": len(recognised)} if recognised else {})}
    return out.document(path, data, "pdf", title, metadata=metadata)
