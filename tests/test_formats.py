"""Markdown, HTML and PDF documents: clean passages, sections, pages, citations, --doc filter."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import REPORT, ROOT
from hypothesis import example, given, settings
from hypothesis import strategies as st

from qa.cli import main
from qa.errors import UsageError
from qa.ingest.chunking import chunk_document
from qa.ingest.loaders import formats, html, layout, load_corpus, markdown
from qa.present.citation import cite
from qa.retrieve.docfilter import exact, matches, select_documents
from qa.retrieve.searcher import Searcher

EXAMPLES = ROOT / "examples"


def _examples_module():
    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


write_handbook = _examples_module().write_handbook


def words(text: str) -> int:
    return len(text.split())


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- Markdown -------------------------------------------------------------------------------

NOTES_MD = """\
---
title: Notes on "mid back" pain
author: someone
---

# Mid back notes

Pain between the **shoulder blades** is often *muscular*; see [the guide](https://example.org/a_b)
and the [glossary][gl] for words like `thoracic`. AT&amp;T and 3 \\* 4 are not markup.

![an x-ray](xray.png)

Setext heading
--------------

- first bullet with __strong__ text
- second bullet
  * nested bullet

1. numbered step
2. another step

> A quoted line from a <b>patient</b>.

```python
print("code keeps its text")
```

| Exercise | Reps |
|----------|------|
| Rows     | 12   |

[gl]: https://example.org/glossary
"""


def test_markdown_passages_show_no_markup_and_map_back_to_the_file(tmp_path: Path):
    (tmp_path / "notes.md").write_text(NOTES_MD, encoding="utf-8")
    [doc] = load_corpus(tmp_path).documents
    assert doc.kind == "markdown" and doc.title == 'Notes on "mid back" pain'
    chunks = chunk_document(doc, words)
    texts = [c.text for c in chunks]
    assert texts == [
        "Pain between the shoulder blades is often muscular; see the guide "
        "(https://example.org/a_b)\nand the glossary (https://example.org/glossary) for "
        "words like thoracic. AT&T and 3 * 4 are not markup.",
        "\u2022 first bullet with strong text\n\u2022 second bullet\n\u2022 nested bullet",
        "1. numbered step\n2. another step",
        "A quoted line from a patient.",
        "Exercise | Reps\nRows | 12",  # the fenced code block is left out
    ]
    assert [c.section for c in chunks] == ["Mid back notes"] + ["Setext heading"] * 4
    assert "print" not in doc.text and "code keeps its text" not in doc.text
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
        for marker in ("**", "__", "](", "![", "```", "<b>", "`", "---", "author:"):
            assert marker not in c.text
        assert not re.search(r"^\s*([#>*+-]|\d+\.\s*$)", c.text, re.M)
        # offsets map back to the file: the source span starts and ends on the passage's first
        # and last characters copied from the file, and holds its words in order (bullets and
        # a reference link's address, defined at the end of the file, are inserted)
        source = NOTES_MD[c.source_start : c.source_end]
        copied = c.text.removeprefix("\u2022 ")
        assert source[0] == copied[0] and source[-1] == copied[-1]
        pos = 0
        for word in re.findall(r"\w+", copied.replace("(https://example.org/glossary)", "")):
            pos = source.index(word, pos) + len(word)
    first = chunks[0]
    assert NOTES_MD[first.source_start : first.source_end].startswith("Pain between the **should")
    assert "(https://example.org/a_b)" in NOTES_MD[first.source_start : first.source_end]


def test_source_span_of_copied_and_inserted_text():
    from qa.ingest.loaders import Document

    # "abc" copied from file offset 10, "\n\n" inserted, "de" copied from file offset 20
    doc = Document("x.md", "abc\n\nde", "markdown", source_map=((0, 10, 3), (5, 20, 2)))
    assert doc.source_span(0, 7) == (10, 22)
    assert doc.source_span(1, 2) == (11, 12)
    assert doc.source_span(2, 6) == (12, 21)  # inserted characters map to their neighbours
    assert doc.source_span(3, 5) is None  # nothing copied from the file
    assert Document("x.html", "abc").source_span(0, 3) is None


def test_markdown_title_falls_back_to_first_heading_then_file_name():
    assert markdown.load("a.md", b"Intro.\n\n## Second level\n\nText.").title == "Second level"
    assert markdown.load("my-notes.md", b"Just text.").title == "My notes"


def nested_list(depth: int) -> bytes:
    items = "\n".join("  " * d + f"- item {d} of the outline" for d in range(depth))
    return f"# Outline\n\n{items}\n\nClosing paragraph on rib pain.\n".encode()


def test_markdown_nested_deep_loses_no_text(caplog):
    """Found by trying: markdown-it stops at 20 levels by default, and a list 10 deep dropped
    everything after it, the closing paragraph included, without a word. 30 deep is now
    rendered as Markdown; deeper than the parser follows, the file is read as plain text."""
    doc = markdown.load("outline.md", nested_list(30))
    assert doc.kind == "markdown" and doc.title == "Outline"
    assert "\u2022 item 29 of the outline" in doc.text and "Closing paragraph" in doc.text
    assert not caplog.records
    doc = markdown.load("outline.md", nested_list(60))
    assert doc.kind == "text"
    assert "- item 59 of the outline" in doc.text and "Closing paragraph" in doc.text
    assert [r.getMessage() for r in caplog.records] == [
        f"outline.md is nested more than {markdown.MAX_NESTING} levels deep; read as plain text"]
    assert "Closing" in markdown.load("q.md", b">" * 5000 + b" deep\n\nClosing.").text


def test_markdown_list_items_are_sentences_of_their_own():
    from qa.ingest.text import sentence_spans

    doc = markdown.load(
        "l.md",
        b"Do this:\n\n- stretch every morning\n- walk after lunch\n  * slowly\n\n"
        b"1. sit up straight\n2. take breaks. Often\n3) rest\n",
    )
    sentences = [doc.text[s:e] for s, e in sentence_spans(doc.text)]
    assert sentences == [
        "Do this:",
        "\u2022 stretch every morning",
        "\u2022 walk after lunch",
        "\u2022 slowly",
        "1. sit up straight",
        "2. take breaks.",
        "Often",
        "3) rest",
    ]


def test_plain_prose_sentences_are_unchanged_by_the_list_rule():
    from qa.ingest.text import sentence_spans

    text = "Pain has 2. Causes vary\nwidely in 2019. The end\n2 is a number."
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "Pain has 2.", "Causes vary\nwidely in 2019.", "The end\n2 is a number.",
    ]  # fmt: skip


def test_markdown_links_keep_their_address():
    doc = markdown.load(
        "links.md",
        b"See [the guide](https://example.org/guide \"Title\"), [x](<https://a.org/b c>), "
        b"[mail](mailto:me@example.org), <https://auto.example>, "
        b"[https://same.org](https://same.org), "
        b"[top](#top), [ref][r] and [local](setup.md).\n\n[r]: https://ref.example/page\n",
    )
    assert doc.text.strip() == (
        "See the guide (https://example.org/guide), x (https://a.org/b c), "
        "mail (mailto:me@example.org), https://auto.example, https://same.org, top, "
        "ref (https://ref.example/page) and local (setup.md)."
    )
    start = doc.text.index("https://example.org/guide")
    span = doc.source_span(start, start + len("https://example.org/guide"))
    raw = b"See [the guide](https://example.org/guide".decode()
    assert span == (raw.index("https"), len(raw))  # copied from the link's own target


def test_markdown_code_blocks_are_left_out_inline_code_kept():
    doc = markdown.load(
        "code.md",
        b"# Setup\n\nRun `qa build` first.\n\n```bash\nrm -rf /\n```\n\n    indented code\n\n"
        b"After the code.\n",
    )
    assert doc.text.split() == ["Setup", "Run", "qa", "build", "first.", "After", "the", "code."]


_MD_WORD = st.sampled_from(["back", "pain", "rest", "AT&amp;T", "x_y", "\\*", "café", "a<b"])
_MD_INLINE = st.one_of(
    _MD_WORD,
    _MD_WORD.map(lambda w: f"**{w}**"),
    _MD_WORD.map(lambda w: f"*{w}*"),
    _MD_WORD.map(lambda w: f"[{w}](http://example.org/{len(w)})"),
    _MD_WORD.map(lambda w: f"`{w}`"),
    _MD_WORD.map(lambda w: f"![{w}](pic-{w}.png)"),
    _MD_WORD.map(lambda w: f"<b>{w}</b>"),
    _MD_WORD.map(lambda w: f"[{w}][ref]"),
)
_MD_LINE = st.lists(_MD_INLINE, min_size=1, max_size=6).map(" ".join)
_MD_BLOCK = st.one_of(
    _MD_LINE,
    _MD_LINE.map(lambda s: "# " + s),
    _MD_LINE.map(lambda s: "### " + s + " ###"),
    st.lists(_MD_LINE, min_size=1, max_size=3).map(lambda ls: "\n".join("- " + x for x in ls)),
    st.lists(_MD_LINE, min_size=1, max_size=3).map(lambda ls: "\n".join("1. " + x for x in ls)),
    _MD_LINE.map(lambda s: "> " + s),
    st.lists(_MD_WORD, min_size=1, max_size=4).map(lambda ws: "```\n" + " ".join(ws) + "\n```"),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_MD_BLOCK, min_size=1, max_size=8), st.sampled_from(["\n\n", "\n", "\r\n\r\n"]))
@example(["- ![back](pic-back.png)"], "\n\n")  # an item of only an image: no lone bullet
def test_markdown_source_map_is_exact_and_in_order(blocks, sep):
    source = sep.join(blocks)
    doc = markdown.load("p.md", source.encode())
    runs = doc.source_map or ()
    copied = set()
    for i, (t, s, n) in enumerate(runs):
        assert doc.text[t : t + n] == source[s : s + n]  # every run is a verbatim copy
        if i + 1 < len(runs):
            assert runs[i + 1][0] >= t + n and runs[i + 1][1] >= s + n  # in order, no overlap
        copied.update(range(t, t + n))
    # every letter and digit shown comes from the file (only separators and bullets are
    # inserted; "[w][ref]" is no link here: no definition of "ref")
    assert all(i in copied for i, ch in enumerate(doc.text) if ch.isalnum())
    for c in chunk_document(doc, words):
        assert doc.text[c.start : c.end] == c.text
        assert "**" not in c.text and "](" not in c.text
        assert 0 <= c.source_start < c.source_end <= len(source)
        shown = [i for i in range(c.start, c.end) if i in copied]  # first and last copied
        assert source[c.source_start] == doc.text[shown[0]]
        assert source[c.source_end - 1] == doc.text[shown[-1]]


# --- HTML -----------------------------------------------------------------------------------

BOILERPLATE_HTML = """<!DOCTYPE html>
<html><head><meta charset="iso-8859-1"><title>Thoracic pain | Example Health</title>
<style>.x { content: "STYLEMARK" }</style><script>var s = "SCRIPTMARK";</script></head>
<body>
<a class="skip-link" href="#main">SKIPMARK</a>
<header><div class="logo">HEADERMARK</div>
<nav><ul><li>NAVMARK one</li><li>two</li></ul></nav></header>
<div id="cookie-consent">COOKIEMARK we use cookies <button>OK</button></div>
<div role="navigation">ROLEMARK</div>
<!-- COMMENTMARK -->
<main id="main">
  <h1>Thoracic pain</h1>
  <p>The thoracic spine is the middle part of the back, between the neck and the lower back.</p>
  <div hidden>HIDDENMARK</div><p aria-hidden="true">ARIAMARK</p>
  <p style="display:none">INVISIBLEMARK</p>
  <h2>Caf\xe9 remedies</h2>
  <p>Heat packs and gentle movement help most <strong>muscular</strong> pain.<br>Rest briefly.</p>
  <form><label>FORMMARK</label><input value="x"></form>
  <div class="newsletter-signup">NEWSMARK subscribe</div>
  <h3>Exercises</h3>
  <ol><li>Shoulder rolls</li><li>Chest opener</li></ol>
  <noscript>NOSCRIPTMARK</noscript><iframe src="x">IFRAMEMARK</iframe>
</main>
<aside>ASIDEMARK</aside>
<footer>FOOTERMARK (c) 2024</footer>
</body></html>
"""


def test_html_boilerplate_never_becomes_a_passage(tmp_path: Path):
    (tmp_path / "page.html").write_bytes(BOILERPLATE_HTML.encode("iso-8859-1"))
    [doc] = load_corpus(tmp_path).documents
    assert doc.kind == "html" and doc.title == "Thoracic pain"
    assert not re.search(r"[A-Z]+MARK", doc.text), doc.text
    chunks = chunk_document(doc, words)
    assert [(c.section, c.text) for c in chunks] == [
        ("Thoracic pain", "The thoracic spine is the middle part of the back, between the neck "
                          "and the lower back."),
        ("Café remedies", "Heat packs and gentle movement help most muscular pain.\nRest briefly."),
        ("Exercises", "1. Shoulder rolls\n2. Chest opener"),  # items: sentences of their own
    ]  # fmt: skip
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
        assert c.page is None and c.source_start is None


def test_html_without_main_uses_the_body_and_titles_from_h1():
    page = (
        b"<html><body><nav>Menu</nav><h1>Only heading</h1><p>Body text here.</p>"
        b"<footer>Footer</footer></body></html>"
    )
    doc = html.load("bare.htm", page)
    assert doc.title == "Only heading"
    assert doc.text.split("\n\n") == ["Only heading", "Body text here."]
    article = (
        b"<title>Site</title><body><article><p>short</p></article>"
        b"<article><h2>Long</h2><p>the longest article wins here</p></article></body>"
    )
    assert "longest article" in html.load("a.html", article).text
    assert "short" not in html.load("a.html", article).text
    kept = (
        b"<main><div class='hero-banner'><h1>Hero title</h1></div>"
        b"<p role='alert'>Seek care at once if numb.</p></main>"
    )
    assert html.load("k.html", kept).text.split("\n\n") == [
        "Hero title",
        "Seek care at once if numb.",
    ]


def test_html_nested_thousands_deep_is_read(tmp_path: Path):
    """Unclosed tags nest as deep as there are tags: 5,000 unclosed `<font>` tags (and a menu
    as deep) stopped the whole build with a RecursionError, and took minutes before it."""
    page = (
        "<html><body><h1>Old page</h1>" + "<font>back pain " * 5000
        + "<div class='menu'>" + "<div>" * 5000 + "Menu entry" + "</div>" * 5001
        + "</body></html>"
    )  # fmt: skip
    (tmp_path / "old.html").write_text(page, encoding="utf-8")
    loaded = load_corpus(tmp_path)
    assert loaded.skipped == []
    [doc] = loaded.documents
    assert doc.title == "Old page"
    assert doc.text.split("\n\n") == ["Old page", " ".join(["back pain"] * 5000)]


def test_a_parser_recursing_too_deep_refuses_its_file(monkeypatch):
    """Whatever a loader's parser does with a pathological file, a RecursionError refuses that
    file with a reason (the reading process skips it and reads the next one)."""

    def recursing(path: str, data: bytes, depth: int = 0):
        return recursing(path, data, depth + 1)

    monkeypatch.setitem(formats.LOADERS, ".md", ("markdown", recursing))
    with pytest.raises(ValueError, match="^nested too deeply to read$"):
        formats.parse_bytes("deep.md", b"# Deep")


# --- PDF ------------------------------------------------------------------------------------


def test_pdf_pages_sections_and_title(tmp_path: Path):
    write_handbook(tmp_path / "handbook.pdf")
    loaded = load_corpus(tmp_path)
    [doc] = loaded.documents
    assert doc.kind == "pdf" and doc.title == "Back care handbook" and len(doc.pages) == 3
    for furniture in ("clinic edition", "Page 1", "of 3"):
        assert furniture not in doc.text  # running header and page numbers are dropped
    chunks = chunk_document(doc, words)
    assert [(c.page, c.section) for c in chunks] == [
        (1, "Lifting safely"), (1, "Lifting safely"),
        (2, "Sleeping positions"), (2, "Sleeping positions"),
        (3, "When to see a doctor"), (3, "When to see a doctor"),
    ]  # fmt: skip
    assert chunks[2].text == (
        "A medium-firm mattress supports the spine better than a very soft one for most people "
        "with back pain."
    )
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text and c.source_start is None
    # without a Title in the metadata, the largest heading of the first page is the title
    write_handbook(tmp_path / "handbook.pdf", title_metadata=False)
    assert load_corpus(tmp_path).documents[0].title == "Back care handbook"


def test_pdf_lines_paragraphs_and_hyphenation():
    lines = [
        layout.Line("Causes of pain", 700, 16, True),
        layout.Line("Most back pain comes from strained mus-", 670, 10),
        layout.Line("cles and improves within weeks.", 658, 10),
        layout.Line("A new paragraph starts after a wider gap.", 630, 10),
        layout.Line("12", 40, 10),
    ]
    layout.mark_headings([lines], 10, False)
    assert [line.heading for line in lines] == [True, False, False, False, False]
    groups = layout.paragraphs(lines[:4], layout.line_spacing([lines[:4]]))
    assert [layout.join_lines(g) for g in groups] == [
        "Causes of pain",
        "Most back pain comes from strained muscles and improves within weeks.",
        "A new paragraph starts after a wider gap.",
    ]
    kept = layout.drop_running_lines([lines], 10)
    assert [line.text for line in kept[0]][-1] == "A new paragraph starts after a wider gap."


def test_bad_pdfs_are_skipped_with_a_reason(tmp_path: Path):
    from fpdf import FPDF

    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    blank = FPDF()
    blank.add_page()
    blank.output(str(tmp_path / "scanned.pdf"))
    loaded = load_corpus(tmp_path)
    assert loaded.documents == []
    reasons = dict(loaded.skipped)
    assert reasons["broken.pdf"].startswith("unreadable PDF")
    assert reasons["scanned.pdf"].startswith("no text to extract")


# --- Citations and the document filter ------------------------------------------------------


def test_citation_text():
    assert cite("Back care handbook", "Sleeping positions", 2) == (
        "Back care handbook, Sleeping positions, p. 2"
    )
    assert cite("Posture at work", "Posture at work", None) == "Posture at work"
    assert cite("Report", None, None) == "Report"
    assert cite(None, "Causes", 4) == "Causes, p. 4"


def test_doc_patterns():
    assert matches("*.pdf", "reports/2024/handbook.PDF")
    assert matches("notes/*", "notes/a/b.md") and not matches("notes/*", "other/notes.md")
    assert matches("handbook.pdf", "reports/handbook.pdf")  # a bare file name
    assert not matches("*.md", "a.markdown.txt")
    assert matches("/guide.pdf", "guide.pdf") and not matches("/guide.pdf", "notes/guide.pdf")
    assert matches("/notes/*", "notes/a/b.md") and not matches("/notes/*", "x/notes/b.md")
    odd = "odd [draft] *v2?.md"
    assert matches(exact(odd), odd) and not matches(exact(odd), "odd d *v2x.md")
    assert not matches(exact("a.md"), "sub/a.md")
    paths = ["a.txt", "b/c.pdf", "b/d.md"]
    assert select_documents(None, paths) is None and select_documents("", paths) is None
    assert select_documents(["*.pdf", "a.*"], paths) == ["a.txt", "b/c.pdf"]
    with pytest.raises(UsageError) as info:
        select_documents(["*.pdf", "*.docx"], paths)
    assert "'*.docx'" in info.value.message and "a.txt" in info.value.hint


def test_doc_patterns_match_names_written_decomposed():
    """Found by trying: a file name a Mac wrote decomposed ("cafe" + a combining accent) did
    not match "café" typed composed, and the error listed a name that looked just the same."""
    import unicodedata

    decomposed = unicodedata.normalize("NFD", "notes/café-notes.txt")
    for pattern in ("café-notes.txt", "CAFÉ*", exact("notes/café-notes.txt"),
                    unicodedata.normalize("NFD", "café*")):  # fmt: skip
        assert matches(pattern, decomposed) and matches(pattern, "notes/café-notes.txt")
    assert select_documents("café*", [decomposed, "b.txt"]) == [decomposed]


# --- A mixed corpus, end to end -------------------------------------------------------------

PDF_QUESTION = "How should I sleep with back pain?"


@pytest.fixture(scope="module")
def mixed_corpus(tmp_path_factory) -> Path:
    return write_mixed_corpus(tmp_path_factory.mktemp("mixed"))


def write_mixed_corpus(corpus: Path) -> Path:
    """.txt, .html, .md (in a subfolder), .pdf, and two bad files (also used by test_ray)."""
    shutil.copy(REPORT, corpus / REPORT.name)
    shutil.copy(EXAMPLES / "posture-at-work.html", corpus)
    (corpus / "notes").mkdir()
    shutil.copy(EXAMPLES / "exercise-notes.md", corpus / "notes")
    write_handbook(corpus / "back-care-handbook.pdf")
    (corpus / "notes" / "scan.docx").write_bytes(b"PK\x03\x04 not supported")
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.7 truncated")
    return corpus


@pytest.fixture(scope="module")
def mixed_index(tmp_path_factory, mixed_corpus, embedder) -> Path:
    from qa.build import build_index

    index = tmp_path_factory.mktemp("mixed-index")
    summary = build_index(mixed_corpus, index, embedder=embedder)
    assert summary.documents == 4
    assert "skipped 2: broken.pdf, notes/scan.docx" in summary.line()
    return index


@pytest.fixture(scope="module")
def mixed_searcher(mixed_index, embedder) -> Searcher:
    return Searcher(mixed_index, embedder=embedder)


def test_build_summary_lists_skipped_files(capsys, mixed_corpus, tmp_path, embedder):
    code, out, err = run(capsys, "build", "--corpus", str(mixed_corpus), "--index", str(tmp_path))
    assert code == 0
    assert out.startswith("Indexed 4 documents, ")
    assert "skipped 2: broken.pdf, notes/scan.docx" in out
    assert ("qa: warning: skipped notes/scan.docx: damaged or truncated file (not a readable "
            "zip archive)") in err
    assert "qa: warning: skipped broken.pdf: unreadable PDF" in err
    assert err.count("skipped broken.pdf") == 1  # said once


def test_every_hit_cites_document_section_and_page(mixed_searcher, mixed_corpus):
    documents = {d["path"]: d for d in mixed_searcher.documents()}
    assert {p: (d["kind"], d["pages"]) for p, d in documents.items()} == {
        "back-care-handbook.pdf": ("pdf", 3),
        "chronic-middle-back-pain.txt": ("text", None),
        "notes/exercise-notes.md": ("markdown", None),
        "posture-at-work.html": ("html", None),
    }
    seen = set()
    for question in [
        PDF_QUESTION,
        "exercises for a stiff upper back",
        "desk posture",
        "What causes chronic mid back pain?",
    ]:
        for hit in mixed_searcher.search(question, k=40):  # every passage of the corpus
            seen.add(hit.doc)
            assert hit.title == documents[hit.doc]["title"]
            citation = cite(hit.title, hit.section, hit.page)
            assert citation.startswith(hit.title)
            if hit.doc.endswith(".pdf"):
                assert hit.page in (1, 2, 3) and citation.endswith(f"p. {hit.page}")
            else:
                assert hit.page is None and "p. " not in citation
            if hit.doc != REPORT.name:  # the report opens with three paragraphs before a heading
                assert hit.section and hit.section in citation
            if hit.source_start is not None:  # .txt and .md: the passage's place in the file
                raw = (mixed_corpus / hit.doc).read_text(encoding="utf-8")
                assert raw[hit.source_start] == hit.text.removeprefix("\u2022 ")[0]  # a bullet
                assert raw[hit.source_end - 1] == hit.text[-1]
            else:
                assert hit.doc.endswith((".pdf", ".html"))
    assert seen == set(documents)
    best = mixed_searcher.search(PDF_QUESTION, k=1)[0]
    assert (best.doc, best.page) == ("back-care-handbook.pdf", 2)
    assert best.section == "Sleeping positions"


def test_original_file_is_offered(mixed_searcher, mixed_corpus):
    path = mixed_searcher.original_path("back-care-handbook.pdf")
    assert path == (mixed_corpus / "back-care-handbook.pdf").resolve()
    assert path.read_bytes().startswith(b"%PDF")
    assert mixed_searcher.original_path("../outside.txt") is None
    assert mixed_searcher.original_path("missing.pdf") is None


def test_doc_filter_applies_before_ranking(mixed_searcher):
    question = "What causes chronic mid back pain?"
    unfiltered = mixed_searcher.search(question, k=3)
    assert all(h.doc == REPORT.name for h in unfiltered)
    pdf_only = mixed_searcher.search(question, k=3, doc="*.pdf")
    assert len(pdf_only) == 3 and {h.doc for h in pdf_only} == {"back-care-handbook.pdf"}
    assert [h.rank for h in pdf_only] == [1, 2, 3]
    assert pdf_only[0].score >= pdf_only[1].score >= pdf_only[2].score
    both = mixed_searcher.search(question, k=40, doc=["notes/*", "*.HTML"])
    assert {h.doc for h in both} == {"notes/exercise-notes.md", "posture-at-work.html"}
    assert len(both) == sum(
        d["chunks"] for d in mixed_searcher.documents() if d["kind"] in ("markdown", "html")
    )
    with pytest.raises(UsageError):
        mixed_searcher.search(question, doc="*.docx")


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_doc_filter_holds_in_every_mode(mixed_searcher, mode):
    answer = mixed_searcher.ask("What causes chronic mid back pain?", k=3, mode=mode, doc="*.pdf")
    assert answer.mode == mode
    assert len(answer.hits) == 3
    assert {h.doc for h in answer.hits} == {"back-care-handbook.pdf"}
    assert all(h.page in (1, 2, 3) for h in answer.hits)


def test_cli_plain_and_json_citations(capsys, mixed_index):
    code, out, err = run(capsys, "ask", PDF_QUESTION, "--index", str(mixed_index), "-k", "2")
    assert code == 0, err
    first = out.splitlines()[0]
    citation = "Back care handbook, Sleeping positions, p. 2 (back-care-handbook.pdf)"
    assert re.fullmatch(r"1\. \[0\.\d{3}\] " + re.escape(citation), first)
    code, out, err = run(
        capsys,
        "ask",
        "desk set-up",
        "--index",
        str(mixed_index),
        "-k",
        "3",
        "--json",
        "--doc",
        "*.html",
        "--doc",
        "*.pdf",
    )
    assert code == 0, err
    hits = json.loads(out)["hits"]
    assert len(hits) == 3
    for hit in hits:
        assert hit["doc"] in ("posture-at-work.html", "back-care-handbook.pdf")
        assert ("page" in hit) and (hit["page"] is None) == hit["doc"].endswith(".html")
        assert hit["section"]
    code, _, err = run(capsys, "ask", "x", "--index", str(mixed_index), "--doc", "nope*")
    assert code == 2
    assert err.startswith("qa: error: no document matches --doc 'nope*'") and "hint:" in err


# --- The page: citations, the original file, the document filter ----------------------------


@pytest.fixture
def mixed_app(monkeypatch, mixed_index, mixed_corpus, embedder):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("QA_INDEX", str(mixed_index))
    monkeypatch.setenv("QA_CORPUS", str(mixed_corpus))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception
    return at


def _cards(at) -> list:
    return [c for c in at.main.children.values() if c.type == "flex_container" and c.expander]


def test_page_cites_title_section_page_and_offers_the_original(mixed_app, monkeypatch):
    from urllib.parse import parse_qsl

    from streamlit.testing.v1 import AppTest

    mixed_app.text_input(key="q").input(PDF_QUESTION)
    mixed_app.run()
    assert not mixed_app.exception and not mixed_app.error
    first = _cards(mixed_app)[0]
    assert first.markdown[0].value == (
        "**1** · **Back care handbook\\, Sleeping positions\\, p\\. 2** · "
        "*back\\-care\\-handbook\\.pdf*"
    )
    assert not first.get("download_button")  # not one whole-file download per card, but ...
    [link] = first.get("link_button")  # ... a link to the passage in its document
    params = dict(parse_qsl(link.proto.url.lstrip("?").removesuffix("#passage")))
    assert params["doc"] == "back-care-handbook.pdf"
    view = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    view.query_params.update(params)
    view.run()
    assert not view.exception and not view.error
    [download] = view.get("download_button")
    assert download.label == "Download the original (back\\-care\\-handbook\\.pdf)"
    # the file is read only when clicked (deferred), and the click does not rerun the page
    assert download.proto.deferred_file_id and download.proto.ignore_rerun
    assert "medium-firm mattress" in " ".join(m.value for m in view.markdown).replace("\\", "")


def test_page_document_filter(mixed_app):
    [choice] = mixed_app.multiselect
    assert choice.options == [
        "Back care handbook (back-care-handbook.pdf, 3 pages)",
        "Chronic middle back pain (chronic-middle-back-pain.txt)",
        "Exercise notes for a stiff upper back (notes/exercise-notes.md)",
        "Posture at work (posture-at-work.html)",
    ]
    mixed_app.text_input(key="q").input("What causes chronic mid back pain?")
    mixed_app.run()
    assert all("chronic\\-middle" in c.markdown[0].value for c in _cards(mixed_app))
    mixed_app.multiselect(key="docs").set_value(["posture-at-work.html"]).run()
    assert not mixed_app.exception and not mixed_app.error
    headers = [c.markdown[0].value for c in _cards(mixed_app)]
    assert len(headers) == 3  # k passages still come back from the chosen document
    assert all(h.endswith("*posture\\-at\\-work\\.html*") for h in headers)
    mixed_app.multiselect(key="docs").set_value(
        ["notes/exercise-notes.md", "back-care-handbook.pdf"]
    ).run()
    docs = {c.markdown[0].value.rsplit("· ", 1)[1] for c in _cards(mixed_app)}
    assert docs <= {"*notes\\/exercise\\-notes\\.md*", "*back\\-care\\-handbook\\.pdf*"}


def test_page_helpers_for_originals_and_the_filter(tmp_path: Path):
    from qa.present import page

    (tmp_path / "my_notes.md").write_text("# Notes", encoding="utf-8")
    download = page.original_download(tmp_path / "my_notes.md")
    assert (download.label, download.file_name, download.mime) == (
        "Download the original (my\\_notes\\.md)", "my_notes.md", "text/markdown"
    )
    assert download.read() == b"# Notes"  # read when clicked, not when shown
    (tmp_path / "my_notes.md").write_text("# Notes, edited", encoding="utf-8")
    assert download.read() == b"# Notes, edited"
    (tmp_path / "my_notes.md").unlink()
    assert download.read() == b""  # gone by the time of the click: an empty file, no error
    assert page.original_download(tmp_path / "gone.pdf") is None
    assert page.original_download(None) is None
    choices = page.document_choices(
        [{"path": "a.pdf", "title": "A", "pages": 1}, {"path": "b/c.txt", "title": "C"}]
    )
    assert choices == {"a.pdf": "A (a.pdf, 1 page)", "b/c.txt": "C (b/c.txt)"}
    assert page.doc_patterns([], choices) is None
    assert page.doc_patterns(["b/c.txt", "removed.md"], choices) == ["/b/c.txt"]
