"""Damaged and hostile files: each is skipped with a one-line reason naming it, the build goes
on with the rest, the reading stays within its memory and time limits (`QA_PARSE_MB`,
`QA_PARSE_SECONDS`: issue #27, item 8), and the old index is untouched when nothing is left.
A 500-page scan shows an estimate and its progress, and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import shutil
import signal
import struct
import sys
import termios
import time
import uuid
import zipfile
import zlib
from pathlib import Path

import pytest
import samples
from conftest import ROOT
from test_reliability import listening_to_signals

from qa.cli import main
from qa.errors import NOTE, QAError
from qa.ingest.loaders import load_corpus
from qa.retrieve.searcher import Searcher
from qa.store import folder

KINDS = ("docx", "pptx", "odt", "epub")
MAIN_PARTS = {  # the part each kind's reader looks for first: one archive has them all
    "word/document.xml": b"<w:document/>", "ppt/presentation.xml": b"<p:presentation/>",
    "content.xml": b"<office:document-content/>", "META-INF/container.xml": b"<container/>",
}  # fmt: skip
SMALL_MB = 150  # a reading limit that hostile files pass quickly


def skipped(corpus: Path) -> dict[str, str]:
    loaded = load_corpus(corpus)
    assert [d.path for d in loaded.documents] == ["good.txt"]  # the build goes on
    return dict(loaded.skipped)


@pytest.fixture
def corpus(tmp_path, monkeypatch) -> Path:
    """A corpus of one good file (hostile files are added by each test), read without the
    text cache of other tests."""
    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.txt").write_text("Rest the back for a day, then walk a little.\n", "utf-8")
    return corpus


def zip_bomb(inflated_mb: int) -> bytes:
    """An archive with the main part of every kind and an entry of zeros that inflates to
    `inflated_mb` megabytes (about a thousandth of that on disk)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in MAIN_PARTS.items():
            archive.writestr(name, data)
        with archive.open("media/zeros.bin", "w", force_zip64=True) as entry:
            for _ in range(inflated_mb):
                entry.write(bytes(1_000_000))
    return out.getvalue()


def test_zip_bombs_and_archives_of_thousands_of_entries(corpus, monkeypatch):
    monkeypatch.setenv("QA_PARSE_MB", str(SMALL_MB))
    bomb = zip_bomb(SMALL_MB + 50)
    assert len(bomb) < 1_000_000
    crowded = samples.zip_bytes({**MAIN_PARTS, **{f"x/{n}.xml": b"" for n in range(10_001)}})
    for kind in KINDS:
        (corpus / f"bomb.{kind}").write_bytes(bomb)
        (corpus / f"crowded.{kind}").write_bytes(crowded)
    reasons = skipped(corpus)
    for kind in KINDS:
        assert reasons[f"bomb.{kind}"] == (f"inflates to {SMALL_MB + 50} MB, more than the "
                                           f"{SMALL_MB} MB a file may take to read (a zip bomb?)")
        assert reasons[f"crowded.{kind}"] == ("a zip archive of 10,005 entries, over the limit "
                                              "of 10,000 (a zip bomb?)")  # fmt: skip


def write_sample(kind: str, path: Path) -> Path:
    return {"docx": samples.write_docx, "pptx": samples.write_pptx, "odt": samples.write_odt,
            "epub": samples.write_epub}[kind](path)  # fmt: skip


def corrupted(data: bytes) -> bytes:
    """The archive with a byte of every compressed entry flipped (its directory intact)."""
    damaged = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            if info.compress_type == zipfile.ZIP_DEFLATED and info.compress_size > 20:
                name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
                start = info.header_offset + 30 + name_length + extra_length
                damaged[start + info.compress_size // 2] ^= 0xFF
    return bytes(damaged)


def test_truncated_and_corrupt_archives(corpus, tmp_path):
    for kind in KINDS:
        data = write_sample(kind, tmp_path / f"sample.{kind}").read_bytes()
        (corpus / f"truncated.{kind}").write_bytes(data[: len(data) // 2])
        (corpus / f"corrupt.{kind}").write_bytes(corrupted(data))
    reasons = skipped(corpus)
    for kind in KINDS:
        assert reasons[f"truncated.{kind}"] == ("damaged or truncated file (not a readable zip "
                                                "archive)")  # fmt: skip
        assert reasons[f"corrupt.{kind}"].startswith("damaged file ("), reasons


def test_password_protected_office_files_and_pdfs(corpus, tmp_path):
    from fpdf import FPDF
    from msoffcrypto.format.ooxml import OOXMLFile

    for kind in ("docx", "pptx"):
        with open(write_sample(kind, tmp_path / f"plain.{kind}"), "rb") as plain:
            with open(corpus / f"locked.{kind}", "wb") as locked:
                OOXMLFile(plain).encrypt("s3cret", locked)
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(0, 10, "A secret note on posture.")
    pdf.set_encryption(owner_password="owner", user_password="user")
    pdf.output(str(corpus / "locked.pdf"))
    reasons = skipped(corpus)
    for kind in ("docx", "pptx"):
        assert reasons[f"locked.{kind}"] == ("a password-protected (encrypted) Office file: save "
                                             "it without a password to index it")  # fmt: skip
    assert reasons["locked.pdf"] == "encrypted PDF (needs a password)"


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with almost no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))  # fmt: skip


def test_an_image_header_claiming_ten_billion_pixels(corpus):
    (corpus / "huge.png").write_bytes(png_claiming(100_000, 100_000))
    (corpus / "huge.tiff").write_bytes(b"")  # (an empty file of an image type, alongside)
    reasons = skipped(corpus)
    assert reasons["huge.png"] == ("an image of 100,000 x 100,000 pixels, over the limit of 50 "
                                   "million pixels")  # fmt: skip
    assert reasons["huge.tiff"] == "not an image: the file is an empty file (an extension that " \
        "does not match its content)"


def test_extensions_that_lie(corpus, tmp_path):
    docx = samples.write_docx(tmp_path / "real.docx").read_bytes()
    odt = samples.write_odt(tmp_path / "real.odt").read_bytes()
    pdf = (ROOT / "examples" / "back-care-handbook.pdf")
    lies = {
        "report.docx": (pdf.read_bytes(), "not a Word document (.docx): the file is a PDF"),
        "notes.docx": (b"Just some notes, typed.\n", "not a Word document (.docx): the file is "
                                                     "plain text"),
        "deck.pptx": (docx, "not a PowerPoint presentation (.pptx): the file is a Word document "
                            "(.docx)"),
        "book.epub": (odt, "not an EPUB book (.epub): the file is an OpenDocument text (.odt)"),
        "letter.odt": (docx, "not an OpenDocument text (.odt): the file is a Word document "
                             "(.docx)"),
        "photo.png": (b"<html><body>hello</body></html>", "not an image: the file is an HTML "
                                                          "page"),
        "paper.pdf": (docx, "not a PDF: the file is a Word document (.docx)"),
    }  # fmt: skip
    for name, (data, _) in lies.items():
        (corpus / name).write_bytes(data)
    reasons = skipped(corpus)
    for name, (_, reason) in lies.items():
        assert reasons[name] == reason + " (an extension that does not match its content)"


def shared_stream_pdf(pages: int, operations: int) -> bytes:
    """A small PDF whose pages all draw one compressed content stream: each page's text
    extraction decodes and walks all of it again."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    stream = DecodedStreamObject()
    stream.set_data(b"BT /F1 9 Tf 20 700 Td " + b"(back pain relief) Tj 0 -1 Td " * operations
                    + b"ET")  # fmt: skip
    content = writer._add_object(stream.flate_encode())
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica")}))  # fmt: skip
    for _ in range(pages):
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Contents")] = content
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_reading_past_its_time_is_stopped(corpus, monkeypatch):
    """Issue #27: 5 MB of <i>x</i> took 18 s; a 117 KB PDF of pages sharing one content
    stream, 138 s. Each is stopped at the limit (1 s here), named, and the next file is read."""
    monkeypatch.setenv("QA_PARSE_SECONDS", "1")
    (corpus / "italics.html").write_bytes(b"<i>x</i>" * 1_000_000)  # 8 MB: ~30 s here
    (corpus / "shared.pdf").write_bytes(shared_stream_pdf(200, 2000))  # ~40 s here
    reasons = skipped(corpus)
    for name in ("italics.html", "shared.pdf"):
        assert reasons[name] == ("took longer than 1 s to read (the limit per file, and per page "
                                 "recognised, set by QA_PARSE_SECONDS)")  # fmt: skip


def test_reading_past_its_memory_is_stopped(corpus, monkeypatch, tmp_path):
    """Issue #27: 18.9 MB of unclosed <div><p>x took 4.0 GB. The reading process may take
    QA_PARSE_MB; past it, the file is refused with that reason (a Word file whose body fits the
    limit inflated, but not parsed, too: not "damaged") and the next file is read."""
    monkeypatch.setenv("QA_PARSE_MB", str(SMALL_MB))
    (corpus / "unclosed.html").write_bytes(b"<div><p>x" * 200_000)
    with zipfile.ZipFile(samples.write_docx(tmp_path / "real.docx")) as real:
        parts = {name: real.read(name) for name in real.namelist()}
    w = b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    parts["word/document.xml"] = (b"<w:document " + w + b"><w:body>"
                                  + b"<w:p><w:r><w:t>x</w:t></w:r></w:p>" * 400_000
                                  + b"</w:body></w:document>")  # fmt: skip
    (corpus / "long.docx").write_bytes(samples.zip_bytes(parts))
    reasons = skipped(corpus)
    for name in ("unclosed.html", "long.docx"):
        assert reasons[name] in (
            f"needs more memory than the {SMALL_MB} MB a file may take (QA_PARSE_MB)",
            f"the reader stopped (SIGABRT), most likely out of memory: reading a file may "
            f"take {SMALL_MB} MB (QA_PARSE_MB)",
        ), reasons[name]


def test_a_loaders_warning_reaches_the_build(corpus, caplog):
    """A loader's warning, said in the reading process, is logged by the build as it was."""
    items = "\n".join("  " * d + f"- item {d}" for d in range(60))
    (corpus / "outline.md").write_text(f"# Outline\n\n{items}\n", "utf-8")
    caplog.set_level("WARNING", logger="qa")
    loaded = load_corpus(corpus)
    assert [d.path for d in loaded.documents] == ["good.txt", "outline.md"]
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("qa.ingest.loaders.markdown",
         "outline.md is nested more than 100 levels deep; read as plain text")]


def test_a_reading_limit_that_is_not_a_number_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("QA_PARSE_SECONDS", "soon")
    (tmp_path / "a.txt").write_text("Some text.", "utf-8")
    assert main(["build", "--corpus", str(tmp_path), "--index", str(tmp_path / "i")]) == 2
    err = capsys.readouterr().err
    assert err == ("qa: error: QA_PARSE_SECONDS must be a number of seconds > 0, not 'soon' "
                   "(hint: give a positive number, or unset it for the default)\n")


def test_the_old_index_stays_when_nothing_is_left(capsys, corpus, tmp_path, embedder):
    """A corpus of hostile files only: the build says why each was skipped and fails; the
    index it would have replaced is live and unchanged."""
    from qa.build import build_index

    index = tmp_path / "index"
    build_index(corpus, index, embedder=embedder)
    live = folder.current_build(index)
    (corpus / "good.txt").unlink()
    (corpus / "huge.png").write_bytes(png_claiming(100_000, 100_000))
    (corpus / "notes.docx").write_bytes(b"plain words")
    with pytest.raises(QAError) as info:
        build_index(corpus, index, embedder=embedder)
    assert info.value.message.startswith(f"no documents to index in {corpus} (2 files skipped: "
                                         "huge.png: an image of 100,000 x 100,000 pixels")
    assert folder.current_build(index) == live


# --- a 500-page scan ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_scan(tmp_path_factory) -> Path:
    """A 500-page scanned PDF (one picture of text, on every page: a small file)."""
    from fpdf import FPDF

    path = tmp_path_factory.mktemp("scan") / "archive-scan.pdf"
    page = samples.text_image(samples.FOAM_PAGE)
    pdf = FPDF(unit="mm", format=samples.A6)
    for _ in range(500):
        pdf.add_page()
        pdf.image(page, x=0, y=0, w=samples.A6[0], h=samples.A6[1])
    pdf.output(str(path))
    return path


def test_a_long_scan_still_obeys_the_file_size_limit(capsys, long_scan, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(long_scan, corpus)
    (corpus / "good.txt").write_text("Rest the back for a day.\n", "utf-8")
    size_mb = long_scan.stat().st_size / 1e6
    loaded = load_corpus(corpus, max_bytes=int(long_scan.stat().st_size) - 1)
    assert [d.path for d in loaded.documents] == ["good.txt"]
    [(path, reason)] = loaded.skipped
    assert path == "archive-scan.pdf" and reason.startswith(f"{size_mb:.1f} MB, over the limit")


def test_a_long_scan_is_announced_with_its_time(caplog):
    """Once the first page is recognised, a scan that will take over a minute says how long
    (the page took a second here: 499 pages left)."""
    from qa.build import PageMeter

    caplog.set_level(NOTE, logger="qa.build")
    seen: list[tuple] = []
    meter = PageMeter(False, lambda *p: seen.append(p))
    meter.advance("scan.pdf", 0, 500)
    meter.started -= 1.0  # (the first page took a second)
    meter.advance("scan.pdf", 1, 500)
    assert "recognising the text of 500 scanned pages in scan.pdf (OCR); about 8 minutes left " \
           "at 1.0 pages/s (Ctrl-C stops it, and the current index stays)" in caplog.text
    assert seen == [("scan.pdf", 0, 500), ("scan.pdf", 1, 500)]


def processes_marked(mark: str) -> list[int]:
    """Processes whose environment holds `mark` (the build and everything it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if mark.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def read_until(fd: int, wanted: list[str], seconds: float) -> str:
    """What a pseudo-terminal shows until every text in `wanted` appeared (or time ran out)."""
    shown, deadline = b"", time.monotonic() + seconds
    while time.monotonic() < deadline and not all(w.encode() in shown for w in wanted):
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                shown += os.read(fd, 65536)
            except OSError:  # the terminal closed: the process ended
                break
    return shown.decode("utf-8", "replace")


def exit_status(pid: int, seconds: float) -> int | None:
    """The child's wait status once it has exited, or None if it still runs after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.1)
    return None


def test_a_500_page_scan_shows_progress_and_ctrl_c_leaves_nothing(long_scan, tmp_path, embedder):
    """On a terminal: a progress bar of the scan's pages with the time left; Ctrl-C then stops
    the build: exit status 130, no reading process left, the index as it was, nothing kept of
    the half-read scan, no temporary file."""
    from qa.build import build_index

    corpus, index, cache = tmp_path / "corpus", tmp_path / "index", tmp_path / "cache"
    corpus.mkdir()
    (corpus / "good.txt").write_text("Rest the back for a day, then walk a little.\n", "utf-8")
    build_index(corpus, index, embedder=embedder)
    live, before = folder.current_build(index), sorted(p.name for p in index.rglob("*"))
    shutil.copy(long_scan, corpus)
    mark = f"QA_TEST_MARK={uuid.uuid4().hex}"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "QA_CACHE": str(cache),
           mark.split("=")[0]: mark.split("=")[1]}  # fmt: skip
    pid, fd = pty.fork()
    if pid == 0:  # the child: `qa build` on the terminal
        try:
            listening_to_signals()  # Ctrl-C stops it even when this suite runs in the background
            os.execve(sys.executable, [sys.executable, "-m", "qa", "build", "--corpus",
                                       str(corpus), "--index", str(index)], env)  # fmt: skip
        finally:
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a real size
    status = None
    try:
        shown = read_until(fd, ["3/500 pages"], 120)
        # the bar: the file, the share done, the time left (estimated from the pages done)
        assert re.search(r"Recognising archive-scan\.pdf +\d+%, \d\d:\d\d left \|.*\| 2/500 pages",
                         shown), shown  # fmt: skip
        assert len(processes_marked(mark)) >= 2  # the build, and its reading process
        os.write(fd, b"\x03")  # Ctrl-C
        shown += read_until(fd, ["qa: interrupted"], 60)
        status = exit_status(pid, 30)
    finally:
        if status is None:  # (a build that ignored Ctrl-C once hung the whole test run here)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert "qa: interrupted" in shown and os.waitstatus_to_exitcode(status) == 130
    deadline = time.monotonic() + 10
    while processes_marked(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_marked(mark) == []  # no reader, no OCR left running
    assert folder.current_build(index) == live
    assert sorted(p.name for p in index.rglob("*")) == before
    assert not cache.exists() or list((cache / "texts").glob("*")) == []
    [hit] = Searcher(index, embedder=embedder).search("walk", k=1)
    assert hit.doc == "good.txt"
