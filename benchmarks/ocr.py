"""OCR quality and speed: character error rate and pages per second on scans made from known text.

Known text (the shipped report, then MedQuAD answers: Ben Abacha and Demner-Fushman, BMC
Bioinformatics 2019, CC BY 4.0) is set on A4 pages in 11 pt Helvetica with fpdf2; the pages'
own text layer (read back with PDFium) is the truth. Each page is rendered to an image with
PDFium, under several conditions, put into a PDF as a picture (a scanned PDF), and read by
`qa`'s own PDF loader, which recognises it with Tesseract as a build does:

    clean-300   300 dpi, as rendered
    clean-200   200 dpi
    clean-150   150 dpi
    scanned     300 dpi, turned 1 degree, blurred, speckled, saved as JPEG at quality 60

Character error rate (CER) = edit distance between the recognised text and the truth, both with
white space collapsed, over the truth's length. Pages/s is the loader's whole time (rendering
the page for OCR, Tesseract, layout) over the pages, one file at a time on one core.

Usage:
    python benchmarks/ocr.py [--pages 12] [--rapidocr] [--medquad PATH/corpus.jsonl]

Prints a Markdown table, and the Tesseract version. `--rapidocr` adds RapidOCR
(`rapidocr-onnxruntime`, the pip-only engine considered; install it in a scratch environment)
on the clean-200 pages, its lines joined in the order it returns them.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
REPORT = ROOT / "corpus" / "chronic-middle-back-pain.txt"
MEDQUAD = ROOT.parent / "shared" / "benchmarks" / "medquad-small" / "corpus.jsonl"  # (a checkout
# beside shared/, as /work/main is; elsewhere give --medquad)
CONDITIONS = ("clean-300", "clean-200", "clean-150", "scanned")


def paragraphs(pages: int, medquad: Path = MEDQUAD) -> list[str]:
    """Enough prose for `pages` pages: the report, then MedQuAD answers."""
    found = [p.replace("\u00a0", " ") for p in REPORT.read_text("utf-8").splitlines() if p.strip()]
    with open(medquad, encoding="utf-8") as fh:
        for line in fh:
            found.append(json.loads(line)["text"])
            if len(found) > pages * 8:
                break
    return found


def typed_pages(texts: list[str], pages: int) -> bytes:
    """A typed A4 PDF of `pages` pages of the texts (latin-1 only, as the core fonts are)."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, 20)
    pdf.set_font("Helvetica", size=11)
    pdf.add_page()
    for text in texts:
        pdf.multi_cell(0, 5.5, text.encode("latin-1", "replace").decode("latin-1"))
        pdf.ln(3)
        if pdf.page_no() > pages:
            break
    return bytes(pdf.output())


def page_images(typed: bytes, pages: int, condition: str) -> list[tuple[object, str]]:
    """(image, true text) of each of the first `pages` pages, rendered under `condition`."""
    import pypdfium2 as pdfium
    from PIL import Image, ImageFilter

    dpi = {"clean-200": 200, "clean-150": 150}.get(condition, 300)
    rng = random.Random(7)
    out = []
    document = pdfium.PdfDocument(typed)
    for n in range(min(pages, len(document))):
        page = document[n]
        truth = page.get_textpage().get_text_range()
        image = page.render(scale=dpi / 72, grayscale=True).to_pil().convert("L")
        if condition == "scanned":
            image = image.rotate(1.0, resample=Image.BICUBIC, expand=True, fillcolor=255)
            image = image.filter(ImageFilter.GaussianBlur(0.8))
            pixels = np.array(image)
            speckle = np.array([rng.random() < 0.002 for _ in range(pixels.size)])
            pixels.reshape(-1)[speckle] = 0
            encoded = io.BytesIO()
            Image.fromarray(pixels).save(encoded, format="JPEG", quality=60)
            image = Image.open(io.BytesIO(encoded.getvalue()))
        out.append((image, truth))
    return out


def scanned_pdf(images: list) -> bytes:
    """A PDF of the page images, each filling an A4 page (as a scanner writes one)."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    for image in images:
        pdf.add_page()
        pdf.image(image, x=0, y=0, w=210, h=297)
    return bytes(pdf.output())


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, one row of the table at a time (numpy)."""
    if not a or not b:
        return len(a) + len(b)
    codes = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    steps = np.arange(len(b) + 1)
    row = steps.copy()
    for i, ch in enumerate(a, 1):
        cost = (codes != ord(ch)).astype(np.int64)
        best = np.empty_like(row)
        best[0] = i
        best[1:] = np.minimum(row[1:] + 1, row[:-1] + cost)
        row = np.minimum.accumulate(best - steps) + steps
    return int(row[-1])


def normal(text: str) -> str:
    return " ".join(text.split())


def measure(pages: int, medquad: Path) -> list[dict]:
    """CER and pages/s of each condition."""
    from qa.ingest.loaders import pdf

    typed = typed_pages(paragraphs(pages, medquad), pages)
    results = []
    for condition in CONDITIONS:
        shots = page_images(typed, pages, condition)
        data = scanned_pdf([image for image, _ in shots])
        started = time.perf_counter()
        document = pdf.load("scan.pdf", data)
        seconds = time.perf_counter() - started
        bounds = [*document.pages, len(document.text)]
        errors = chars = 0
        for n, (_, truth) in enumerate(shots):
            found = document.text[bounds[n] : bounds[n + 1]]
            errors += edit_distance(normal(found), normal(truth))
            chars += len(normal(truth))
        results.append({"condition": condition, "pages": len(shots), "cer": errors / chars,
                        "pages_per_s": len(shots) / seconds})  # fmt: skip
    return results


def measure_rapidocr(pages: int, medquad: Path) -> dict:
    """CER and pages/s of RapidOCR on the clean-200 page images."""
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR()
    shots = page_images(typed_pages(paragraphs(pages, medquad), pages), pages, "clean-200")
    errors = chars = 0
    started = time.perf_counter()
    for image, truth in shots:
        found, _ = engine(np.array(image.convert("RGB")))
        text = "\n".join(line[1] for line in found or [])
        errors += edit_distance(normal(text), normal(truth))
        chars += len(normal(truth))
    seconds = time.perf_counter() - started
    return {"condition": "clean-200, RapidOCR", "pages": len(shots), "cer": errors / chars,
            "pages_per_s": len(shots) / seconds}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=12, help="pages per condition")
    parser.add_argument("--rapidocr", action="store_true", help="also RapidOCR, on clean-200")
    parser.add_argument("--medquad", type=Path, default=MEDQUAD,
                        help="medquad-small's corpus.jsonl (text for the pages after the report)")
    args = parser.parse_args()
    from qa.ingest.loaders import ocr

    print(f"{ocr.version()}, {args.pages} A4 pages of 11 pt text per condition\n")
    print("| condition | pages | CER | pages/s |\n|---|---|---|---|")
    results = measure(args.pages, args.medquad)
    if args.rapidocr:
        results.append(measure_rapidocr(args.pages, args.medquad))
    for r in results:
        print(f"| {r['condition']} | {r['pages']} | {r['cer']:.2%} | {r['pages_per_s']:.2f} |")


if __name__ == "__main__":
    main()
