"""OCR: the text of page images (scanned PDF pages, .png/.jpg/.tiff files), with Tesseract.

Tesseract (Debian's `tesseract-ocr`, English; `make run` and `make test` install it) reads each
page image from its standard input and writes hOCR: lines of words with their box, baseline and
estimated size. Those become the same `layout.Line`s a typed PDF page gives (size in points,
position from the bottom of the page), so paragraphs, headings and running headers are found the
same way for both. No model is downloaded: Tesseract's English data is part of the package.

Pages are recognised one at a time; each one reports (done, total) to `progress`, which the
sandbox reading the file forwards to the build's progress line (and which restarts its clock,
see `qa.ingest.sandbox`).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING

from qa.ingest.loaders.layout import Line

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

DPI = 300  # pages are rendered at this resolution for recognition
MAX_PIXELS = 50_000_000  # larger images (a header claiming 100,000 x 100,000) are refused
LANGUAGE = "eng"
progress: Callable[[int, int], None] | None = None  # set by the sandbox for the file being read

_TITLE = re.compile(r"(\w+) ([^;]*)")
_LINE_CLASSES = ("ocr_line", "ocr_header", "ocr_caption", "ocr_textfloat")


def tesseract() -> str | None:
    """The tesseract program, or None when it is not installed."""
    return shutil.which("tesseract")


def version() -> str:
    """Tesseract's version line ("tesseract 5.3.0"), or "none"."""
    program = tesseract()
    if program is None:
        return "none"
    try:
        out = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (out.stdout or out.stderr).split("\n", 1)[0].strip()


def report(done: int, total: int) -> None:
    """Tell whoever reads the file that `done` of `total` pages are recognised."""
    if progress is not None:
        progress(done, total)


def check_pixels(width: int, height: int) -> None:
    """Refuse an image too large to recognise (a decompression bomb's header).

    Raises:
        ValueError: more than `MAX_PIXELS` pixels.
    """
    if width * height > MAX_PIXELS:
        raise ValueError(f"an image of {width:,} x {height:,} pixels, over the limit of "
                         f"{MAX_PIXELS / 1e6:.0f} million pixels")  # fmt: skip


def open_image(data: bytes) -> Image.Image:
    """A PIL image of `data` (its header read, nothing decoded yet), refused when the header
    claims more than `MAX_PIXELS` pixels.

    Raises:
        ValueError: not an image Pillow reads, or too large.
    """
    from PIL import Image, UnidentifiedImageError

    pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # checked below,
    try:  # with the size named, before anything is decoded
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        from qa.ingest.loaders.sniff import describe, not_a

        if describe(data).endswith(" image"):
            raise ValueError("damaged or truncated image") from None
        raise not_a("an image", data) from None
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit
    check_pixels(*image.size)
    return image


def recognise(image: Image.Image, dpi: float = DPI) -> list[Line]:
    """The lines of text Tesseract finds in a PIL image, top to bottom.

    Args:
        image: the page (any mode; it is read in grey).
        dpi: its resolution, to give sizes and positions in points.

    Raises:
        ValueError: Tesseract is not installed, or failed on the image.
    """
    program = tesseract()
    if program is None:
        raise ValueError("a scanned page needs OCR, and Tesseract is not installed (install "
                         "Debian's tesseract-ocr, or run `make run` / `make test`)")  # fmt: skip
    check_pixels(*image.size)
    grey = io.BytesIO()
    image.convert("L").save(grey, format="PPM")  # uncompressed: quick to write and to read
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}  # one thread: faster on a busy machine
    done = subprocess.run(
        [program, "stdin", "stdout", "-l", LANGUAGE, "--dpi", str(round(dpi)), "hocr"],
        input=grey.getvalue(), capture_output=True, env=env, check=False,
    )  # fmt: skip
    errors = [line.strip() for line in done.stderr.decode("utf-8", "replace").splitlines()
              if line.strip().startswith(("Error", "what()", "terminate"))]  # fmt: skip
    if done.returncode != 0 or errors:  # (leptonica reports some failures with status 0)
        detail = errors[-1][:120] if errors else f"exit status {done.returncode}"
        raise ValueError(f"OCR failed on a page ({detail})")
    return hocr_lines(done.stdout.decode("utf-8", "replace"), image.size[1], dpi)


def _title(tag) -> dict[str, list[str]]:
    """The properties of an hOCR element's title: {"bbox": ["0", "0", "10", "20"], ...}."""
    return {m.group(1): m.group(2).split() for m in _TITLE.finditer(tag.get("title", ""))}


def hocr_lines(hocr: str, height: int, dpi: float) -> list[Line]:
    """`layout.Line`s of Tesseract's hOCR output for a page `height` pixels tall.

    A line's size is the median estimated size (x_size) of the lines of its paragraph, so that
    the lines of one paragraph agree; its y is its baseline, from the bottom of the page.
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(hocr, "html.parser")
    points = 72.0 / dpi
    lines: list[Line] = []
    for par in soup.find_all(class_="ocr_par"):
        found: list[tuple[str, float, float]] = []  # (text, baseline y, x_size) in pixels
        for line in par.find_all(class_=_LINE_CLASSES):
            words = [w.get_text() for w in line.find_all(class_="ocrx_word")]
            text = " ".join(w.strip() for w in words if w.strip())
            props = _title(line)
            if not text or len(props.get("bbox", ())) != 4:
                continue
            bottom = float(props["bbox"][3])
            offset = float(props.get("baseline", ["0", "0"])[-1])
            size = float(props.get("x_size", [props["bbox"][3]])[0])
            found.append((text, bottom + offset, size))
        if not found:
            continue
        sizes = sorted(f[2] for f in found)
        size = round(sizes[len(sizes) // 2] * points)
        lines.extend(Line(text, (height - y) * points, float(size)) for text, y, _ in found)
    return lines
