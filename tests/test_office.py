"""Word, PowerPoint, OpenDocument, EPUB and scans (OCR): read with their structure, indexed with
the report, each answering a question about its own content first, citing its section or page;
unchanged scans never recognised twice; `qa info` and uploads know the new kinds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import samples
from conftest import REPORT
from test_formats import write_handbook

from qa.cli import main
from qa.ingest.loaders import load_corpus, parse_file
from qa.ingest.text import sentence_spans
from qa.retrieve.searcher import Searcher

NEVER = ("HEADERMARK", "FOOTERMARK", "COMMENTMARK", "DELETEDMARK")


@pytest.fixture(scope="module")
def kinds_corpus(tmp_path_factory) -> Path:
    """The report and one file of each new kind (the PDF: a typed page, then two scans)."""
    corpus = tmp_path_factory.mktemp("kinds")
    shutil.copy(REPORT, corpus / REPORT.name)
    samples.write_docx(corpus / "desk-setup.docx")
    samples.write_pptx(corpus / "yoga.pptx")
    samples.write_odt(corpus / "vitamin-d.odt")
    samples.write_epub(corpus / "habits.epub")
    samples.write_scanned_pdf(corpus / "exercises.pdf", [samples.FOAM_PAGE, samples.BREATHING_PAGE],
                              typed_first="Contents: exercises to do at home, one a page.")
    samples.write_image(corpus / "ice-packs.png")
    return corpus


@pytest.fixture(scope="module")
def kinds_loaded(kinds_corpus):
    return {d.path: d for d in load_corpus(kinds_corpus).documents}


@pytest.fixture(scope="module")
def kinds_index(tmp_path_factory, kinds_corpus, embedder) -> Path:
    from qa.build import build_index

    index = tmp_path_factory.mktemp("kinds-index")
    summary = build_index(kinds_corpus, index, embedder=embedder)
    assert (summary.documents, summary.skipped) == (7, [])
    return index


def sections_of(document) -> list[str]:
    return [document.text[a:b] for a, b in document.headings]


def sentences_of(document) -> list[str]:
    return [document.text[a:b] for a, b in sentence_spans(document.text)]


def test_word_headings_lists_and_tables_without_what_is_not_text(kinds_loaded):
    doc = kinds_loaded["desk-setup.docx"]
    assert (doc.kind, doc.title) == ("docx", "Standing desk guide")
    assert sections_of(doc) == ["Standing desk guide", "Monitor height", "Changing position"]
    sentences = sentences_of(doc)
    for item in ("• Stand for a few minutes after every half hour of sitting",
                 "• Keep the keyboard at elbow height", "Position | Minutes", "Standing | 15",
                 "Shift your weight between both feet while you stand."):  # fmt: skip
        assert item in sentences  # (the tracked insertion kept, the deletion not)
    assert not any(mark in doc.text for mark in NEVER)


def test_opendocument_headings_lists_tables_and_footnotes(kinds_loaded):
    doc = kinds_loaded["vitamin-d.odt"]
    assert (doc.kind, doc.title) == ("odt", "Vitamin D and bones")
    assert sections_of(doc) == ["Vitamin D and bones", "Food sources"]
    sentences = sentences_of(doc)
    for item in ("• Oily fish such as salmon", "• Egg yolks", "Food | Units", "Salmon | 600",
                 "• Ask a doctor before taking supplements."):  # fmt: skip
        assert item in sentences
    assert not any(mark in doc.text for mark in NEVER)


def test_epub_chapters_in_spine_order_under_their_titles(kinds_loaded):
    doc = kinds_loaded["habits.epub"]
    assert (doc.kind, doc.title) == ("epub", "Everyday habits for a healthy back")
    # the spine puts water first; the walking chapter has no heading: its title is the TOC's
    assert sections_of(doc) == ["Drinking water", "Walking programme"]
    assert doc.text.index("Spinal discs") < doc.text.index("Walk for twenty minutes")


def test_slides_are_pages_titled_sections_with_their_notes(kinds_loaded):
    doc = kinds_loaded["yoga.pptx"]
    assert (doc.kind, doc.title) == ("pptx", "Yoga for the upper back")
    assert sections_of(doc) == ["Why yoga", "Cat-cow stretch", "Child's pose"]
    notes = doc.text.index("Repeat the cat-cow stretch ten times")
    assert doc.page_at(notes) == 2 and doc.page_at(doc.text.index("Pose | Breaths")) == 3
    assert "• Kneel on all fours" in sentences_of(doc)


def test_a_pdf_of_typed_and_scanned_pages_reads_both(kinds_loaded):
    doc = kinds_loaded["exercises.pdf"]
    assert (doc.metadata["pages"], doc.metadata["ocr_pages"]) == (3, 2)
    assert doc.page_at(doc.text.index("Contents: exercises")) == 1
    assert doc.page_at(doc.text.index("Roll the foam roller slowly")) == 2
    assert doc.page_at(doc.text.index("Breathe in deeply through the nose")) == 3
    assert sections_of(doc) == ["Foam rolling", "Breathing exercises"]  # from the text's size


@pytest.mark.parametrize("suffix", [".jpg", ".tiff"])
def test_images_are_recognised(tmp_path, suffix):
    path = samples.write_image(tmp_path / f"ice{suffix}")
    doc = parse_file(path.name, path.read_bytes(), {})
    assert (doc.kind, doc.title, doc.pages) == ("image", "Ice packs", (0,))
    assert "hold it on the sore spot for twenty minutes" in doc.text


def test_a_multi_page_tiff_is_a_page_per_frame(tmp_path):
    first, second = samples.text_image(samples.ICE_PAGE), samples.text_image(samples.FOAM_PAGE)
    first.save(tmp_path / "two.tiff", save_all=True, append_images=[second])
    doc = parse_file("two.tiff", (tmp_path / "two.tiff").read_bytes(), {})
    assert doc.page_at(doc.text.index("Roll the foam roller")) == 2


QUESTIONS = [  # question, the file that answers it, its section, its page
    ("How high should the top of the monitor be?", "desk-setup.docx", "Monitor height", None),
    ("How many times should I repeat the cat-cow stretch?", "yoga.pptx", "Cat-cow stretch", 2),
    ("Which vitamin helps the body absorb calcium?", "vitamin-d.odt", "Vitamin D and bones",
     None),
    ("Does drinking water keep the spinal discs supple?", "habits.epub", "Drinking water", None),
    ("How long should I roll the foam roller along my upper back?", "exercises.pdf",
     "Foam rolling", 2),
    ("How long should I hold an ice pack on the sore spot?", "ice-packs.png", "Ice packs", 1),
    ("What causes chronic mid back pain?", REPORT.name, None, None),
]  # fmt: skip


@pytest.mark.parametrize("question, doc, section, page", QUESTIONS)
def test_each_file_answers_its_own_question_first(kinds_index, embedder, question, doc, section,
                                                  page):  # fmt: skip
    hit = Searcher(kinds_index, embedder=embedder).search(question, k=3)[0]
    assert hit.doc == doc
    if section is not None:
        assert (hit.section, hit.page) == (section, page)


def test_info_counts_kinds_and_names_what_was_recognised(capsys, kinds_index):
    assert main(["info", "--index", str(kinds_index)]) == 0
    out = capsys.readouterr().out
    assert ("kinds:      1 docx, 1 epub, 1 image, 1 odt, 1 pdf, 1 pptx, 1 text; "
            "2 documents recognised (OCR): 3 pages") in out
    assert "exercises.pdf  (3 chunks, 3 pages, 2 recognised (OCR))" in out
    assert main(["info", "--index", str(kinds_index), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kinds"]["pptx"] == 1
    assert {f["path"]: f["ocr_pages"] for f in info["files"]}["ice-packs.png"] == 1


def test_unchanged_scans_are_never_recognised_twice(tmp_path, monkeypatch, embedder, caplog):
    """The second build takes the recognised text from the first (kept by hash), so no page is
    recognised again; a changed scan is."""
    from qa.build import build_index

    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    samples.write_image(corpus / "ice-packs.png")
    pages: list[tuple] = []

    def build() -> None:
        build_index(corpus, tmp_path / "index", embedder=embedder,
                    on_reading=lambda *p: pages.append(p))  # fmt: skip

    build()
    assert pages == [("ice-packs.png", 0, 1), ("ice-packs.png", 1, 1)]
    pages.clear()
    caplog.set_level("DEBUG", logger="qa.ingest.loaders")
    build()
    assert pages == [] and "ice-packs.png: text kept from an earlier read" in caplog.text
    samples.write_image(corpus / "ice-packs.png", samples.FOAM_PAGE)
    build()
    assert pages == [("ice-packs.png", 0, 1), ("ice-packs.png", 1, 1)]


def test_an_upload_is_read_once(tmp_path, monkeypatch, embedder):
    """The page's check reads an upload (recognising a scan, with progress); the build that
    follows takes its text from that read."""
    from qa.build import build_index
    from qa.present import documents

    for suffix in (".docx", ".epub", ".jpeg", ".jpg", ".odt", ".png", ".pptx", ".tif", ".tiff"):
        assert suffix in documents.KINDS  # the types the page accepts, and says it accepts
    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    corpus = tmp_path / "corpus"
    data = samples.write_image(tmp_path / "ice.png").read_bytes()
    pages: list[tuple] = []
    documents.save_upload(corpus, "ice packs.png", data, on_page=lambda *p: pages.append(p))
    assert pages == [("ice packs.png", 0, 1), ("ice packs.png", 1, 1)]
    pages.clear()
    summary = build_index(corpus, tmp_path / "index", embedder=embedder,
                          on_reading=lambda *p: pages.append(p))  # fmt: skip
    assert summary.documents == 1 and pages == []


def test_a_text_kept_is_the_text_read(tmp_path, monkeypatch, caplog, kinds_corpus):
    """Read again, every kind comes from the cache exactly as it was read (plain text, with no
    headings and a source map, was never found again); a copy under another name gets that
    name's title when its title came from its name, and keeps its own title otherwise, even
    one that reads like the first name (the handbook's "Back care handbook" was "Handbook")."""
    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    caplog.set_level("DEBUG", logger="qa.ingest.loaders")
    (tmp_path / "plain-notes.txt").write_text("Rest.\n\nWalk a little every day.\n", "utf-8")
    paths = [tmp_path / "plain-notes.txt", *sorted(kinds_corpus.iterdir())]
    for path in paths:
        first = parse_file(path.name, path.read_bytes(), {"size": 1})
        again = parse_file(path.name, path.read_bytes(), {"size": 1})
        assert f"{path.name}: text kept from an earlier read" in caplog.text
        assert again == first and again.metadata == first.metadata
    copy = parse_file("other-name.txt", paths[0].read_bytes(), {})
    assert (copy.path, copy.title) == ("other-name.txt", "Other name")
    handbook = tmp_path / "back-care-handbook.pdf"
    write_handbook(handbook)
    assert parse_file(handbook.name, handbook.read_bytes(), {}).title == "Back care handbook"
    moved = parse_file("handbook.pdf", handbook.read_bytes(), {})
    assert (moved.path, moved.title) == ("handbook.pdf", "Back care handbook")
