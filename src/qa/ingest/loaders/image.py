"""Images (.png, .jpg/.jpeg, .tif/.tiff): the text recognised in them (OCR, `ocr.py`).

Each frame of the image is a page (a multi-page TIFF is a scanned document), laid out like a
PDF page: paragraphs, and headings from the size of the recognised lines. An image whose header
claims more than `ocr.MAX_PIXELS` pixels is refused before anything is decoded, and so is a
file that is not an image whatever its extension.
"""

from __future__ import annotations

from qa.ingest.loaders import ocr
from qa.ingest.loaders.base import Document
from qa.ingest.loaders.layout import largest_first_heading, layout

MAX_FRAMES = 1000  # pages of a multi-page TIFF


def load(path: str, data: bytes) -> Document:
    """The recognised text of an image, one page per frame.

    Raises:
        ValueError: not an image, too large, damaged, or without any text found.
    """
    from PIL import ImageSequence

    image = ocr.open_image(data)
    frames = getattr(image, "n_frames", 1)
    if frames > MAX_FRAMES:
        raise ValueError(f"an image of {frames:,} frames, over the limit of {MAX_FRAMES:,}")
    dpi = _dpi(image.info.get("dpi"))
    pages = []
    ocr.report(0, frames)
    try:
        for done, frame in enumerate(ImageSequence.Iterator(image), 1):
            ocr.check_pixels(*frame.size)
            pages.append(ocr.recognise(frame, dpi))
            ocr.report(done, frames)
    except (OSError, SyntaxError, EOFError) as exc:  # Pillow's errors on damaged image data
        raise ValueError(f"damaged image ({exc})") from None
    out, headings = layout(pages)
    if not out.text().strip():
        raise ValueError("no text found in the image (OCR)")
    metadata = {"pages": len(pages), "ocr_pages": len(pages)}
    return out.document(path, data, "image", largest_first_heading(headings), metadata=metadata)


def _dpi(value) -> float:
    """The image's resolution, when it records a plausible one; else `ocr.DPI`."""
    try:
        dpi = float(value[0])
    except (TypeError, ValueError, IndexError):
        return ocr.DPI
    return dpi if 50 <= dpi <= 1200 else ocr.DPI
