"""qa.present.page: escaping, marking, relevance labels, context windows and index status text."""

from __future__ import annotations

import re
import string
from datetime import datetime, timezone

import pytest
from conftest import REPORT
from hypothesis import given
from hypothesis import strategies as st

from qa.present import page
from qa.retrieve import answered

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "**bold** _it_ `code` ~~strike~~",
    "[link](javascript:alert(1)) <https://example.com>",
    ":red[red text] :blue-background[x] :material/home: :smile: :+1:",
    "$x^2$ and $$\\int$$",
    "# heading\n- item\n1. item\n> quote\n    code block\n---",
    "a -> b <- c <-> d -- e >= f <= g ~= h",
    "&lt;script&gt; &amp; &#60;b&#62;",
    "back\\slash\\ and \\<b\\>",
    "| a | b |\n|---|---|\n| 1 | 2 |",
]


def unescape(markdown: str) -> str:
    """Undo escape_markdown: drop the escaping backslashes and the word joiners."""
    return re.sub(r"\\(.)", r"\1", markdown).replace(page.WORD_JOINER, "")


def strip_marks(markdown: str) -> str:
    """Drop the (unescaped) mark syntax around marked pieces, keeping escaped characters."""
    out, i = [], 0
    while i < len(markdown):
        if markdown[i] == "\\":
            out.append(markdown[i : i + 2])
            i += 2
        elif markdown.startswith(page.MARK_OPEN, i):
            i += len(page.MARK_OPEN)
        elif markdown.startswith(page.MARK_CLOSE, i):
            i += len(page.MARK_CLOSE)
        else:
            out.append(markdown[i])
            i += 1
    return "".join(out)


@pytest.mark.parametrize("text", HOSTILE)
def test_escape_markdown_keeps_hostile_text_literal(text):
    escaped = page.escape_markdown(text)
    assert unescape(escaped) == " ".join(text.split())
    # every ASCII punctuation character is escaped: nothing can open a tag, link or directive
    assert re.search(r"(?<!\\)(?:\\\\)*[<>&*_`\[\]$:#|]", escaped.replace("\\\\", "")) is None
    assert "\n" not in escaped


def test_escape_markdown_defeats_streamlit_text_replacements():
    escaped = page.escape_markdown(":smile: :material/home: a -> b")
    assert ":smile:" not in unescape(escaped.replace(page.WORD_JOINER, "#"))
    assert "\\:" + page.WORD_JOINER + "smile" in escaped
    assert "\\:" + page.WORD_JOINER + "material/home" in escaped.replace("\\/", "/")
    assert "\\-" + page.WORD_JOINER + "\\>" in escaped
    # a time of day or a URL is left alone (no invisible characters where none are needed)
    assert page.WORD_JOINER not in page.escape_markdown("at 11:05, see https://x.org")


@given(st.text())
def test_escape_markdown_round_trips_any_text(text):
    escaped = page.escape_markdown(text)
    assert unescape(escaped) == " ".join(text.split())
    for i, ch in enumerate(escaped):
        if ch in string.punctuation and ch != "\\":
            # preceded by an odd number of backslashes: escaped
            run = len(escaped[:i]) - len(escaped[:i].rstrip("\\"))
            assert run % 2 == 1, (text, escaped)


def test_marked_md_marks_spans_and_keeps_paragraphs():
    text = "First para <b>one</b>.\nSecond line.\n\nThird *para* here."
    start = text.index("<b>")
    md = page.marked_md(text, [(start, start + len("<b>one</b>"))])
    assert md.split("\n\n")[0] == (
        "First para "
        + page.MARK_OPEN
        + "\\<b\\>one\\<\\/b\\>"
        + page.MARK_CLOSE
        + "\\.  \nSecond line\\."
    )
    assert md.split("\n\n")[1] == "Third \\*para\\* here\\."


def test_marked_md_merges_overlaps_and_ignores_empty_or_outside_spans():
    text = "alpha beta gamma"
    md = page.marked_md(text, [(6, 8), (7, 10), (3, 3), (50, 60)])
    assert md == "alpha " + page.MARK_OPEN + "beta" + page.MARK_CLOSE + " gamma"


def test_marked_md_keeps_spaces_outside_the_mark():
    md = page.marked_md("one two three", [(3, 8)])  # " two " with its spaces
    assert md == "one " + page.MARK_OPEN + "two" + page.MARK_CLOSE + " three"


def test_marked_md_mark_spanning_paragraphs_is_marked_in_each():
    text = "aaa bbb\n\nccc ddd"
    md = page.marked_md(text, [(4, 12)])
    assert md == (
        f"aaa {page.MARK_OPEN}bbb{page.MARK_CLOSE}\n\n{page.MARK_OPEN}ccc{page.MARK_CLOSE} ddd"
    )


@given(st.text(), st.lists(st.tuples(st.integers(-5, 60), st.integers(-5, 60)), max_size=4))
def test_marked_md_loses_no_text(text, spans):
    md = page.marked_md(text, spans)
    assert md.count(page.MARK_OPEN) == len(re.findall(r"(?<!\\)\]", md.replace("\\\\", "")))
    shown = text.replace(page.WORD_JOINER, "")  # unescape drops word joiners, typed ones too
    assert " ".join(unescape(strip_marks(md)).split()) == " ".join(shown.split())


def test_marked_md_joins_marks_parted_only_by_spaces():
    text = "One. Two.  Three. Four.\nFive."
    spans = [(0, 4), (5, 9), (11, 17), (24, 29)]  # One. | Two. | Three. | (next line) Five.
    md = page.marked_md(text, spans)
    assert md == (
        f"{page.MARK_OPEN}One\\. Two\\. Three\\.{page.MARK_CLOSE} Four\\.  \n"
        f"{page.MARK_OPEN}Five\\.{page.MARK_CLOSE}"
    )
    assert md.count(page.MARK_OPEN) == 2  # no gap between the first three sentences


@pytest.mark.parametrize(
    "number, label",
    [
        (1.0, "strong match"),
        (0.75, "strong match"),
        (0.6, "good match"),
        (0.5, "good match"),
        (0.3, "weak match"),
        (0.001, "hardly related"),
        (-0.3, "hardly related"),
        (1.7, "strong match"),
    ],
)
def test_relevance_labels_come_from_one_number(number, label):
    rel = page.relevance(number, answered=True)
    assert rel.label == label
    assert rel.text == f"Relevance: {label}"
    assert rel.fraction == min(1.0, max(0.0, number))
    assert rel.highlight == (label in ("good match", "strong match"))  # only what answers


def test_weak_match_starts_where_the_decision_does():
    floor = page.answers_from()
    assert floor == answered.model().threshold
    assert page.relevance(floor, True).label == "weak match"
    assert page.relevance(floor * 0.99, True).label == page.WEAKEST
    assert answered.is_answered(floor) and not answered.is_answered(floor * 0.99)


@given(st.floats(-2, 2))
def test_a_number_under_the_threshold_is_hardly_related_and_unmarked(number):
    rel = page.relevance(min(number, answered.threshold() - 1e-9), answered=False)
    assert rel.label == page.WEAKEST and not rel.highlight


def test_a_not_covered_answer_shows_only_hardly_related_passages(report_searcher):
    for question in ["What is the capital of France?", "best way to reverse a list in python"]:
        answer = report_searcher.ask(question, k=5)
        assert not answer.answered
        labels = {page.relevance(h.confidence, answer.answered).label for h in answer.hits}
        assert labels == {page.WEAKEST}


@given(st.floats(-2, 2), st.floats(-2, 2), st.booleans())
def test_relevance_is_monotonic_in_its_number(a, b, covered):
    low, high = sorted((a, b))
    order = [name for _, name in answered.BANDS] + [page.WEAK, page.WEAKEST]
    rl, rh = page.relevance(low, covered), page.relevance(high, covered)
    assert rl.fraction <= rh.fraction
    assert order.index(rl.label) >= order.index(rh.label)


def test_strength_is_the_calibrated_confidence():
    from qa.retrieve.results import Answer, Hit

    hits = [Hit(1, 1.2, "a.txt", "A", None, 0, 1, "x", confidence=0.9),
            Hit(2, 0.3, "a.txt", "A", None, 0, 1, "y", confidence=0.2)]  # fmt: skip
    answer = Answer("q", hits, True, "hybrid", False, confidence=0.9)
    assert [page.strength(h, answer) for h in hits] == [0.9, 0.2]


def test_context_window_around_a_report_passage():
    text = REPORT.read_text(encoding="utf-8")
    start = text.index("Severe recurrent pain")
    end = text.index("\n", start)
    ctx = page.context_window(text, start, end, chars=300)
    assert ctx.text[ctx.start : ctx.end] == text[start:end]
    assert "Chronic Middle Back Pain Causes" in ctx.text[: ctx.start]  # its heading, before it
    assert ctx.cut_before and ctx.cut_after
    assert len(ctx.text) <= (end - start) + 2 * 300
    # the window begins at a paragraph break and ends at one
    begin = text.index(ctx.text)
    assert text[begin - 2 : begin].strip() == "" and text[begin + len(ctx.text)] == "\n"


def test_context_window_whole_short_document():
    text = "Only one passage here."
    ctx = page.context_window(text, 0, len(text))
    assert (ctx.text, ctx.start, ctx.end, ctx.cut_before, ctx.cut_after) == (
        text,
        0,
        len(text),
        False,
        False,
    )


@given(
    st.text(alphabet="ab \n", max_size=300),
    st.integers(0, 300),
    st.integers(0, 300),
    st.integers(1, 80),
)
def test_context_window_properties(text, a, b, chars):
    start, end = sorted((min(a, len(text)), min(b, len(text))))
    ctx = page.context_window(text, start, end, chars)
    assert ctx.text[ctx.start : ctx.end] == text[start:end]
    assert len(ctx.text) <= (end - start) + 2 * chars
    lo = start - ctx.start
    assert text[lo : lo + len(ctx.text)] == ctx.text
    if ctx.start > 0:  # never starts inside a word
        assert lo == 0 or text[lo - 1].isspace() or ctx.text[0].isspace()


def test_context_md_marks_the_passage_apart_from_answer_highlights_and_shows_cuts():
    ctx = page.Context("before <i>passage</i> after", 7, 21, True, False)
    md = page.context_md(ctx)
    assert md == (
        "… before " + page.PASSAGE_OPEN + "\\<i\\>passage\\<\\/i\\>" + page.MARK_CLOSE + " after"
    )
    assert page.PASSAGE_OPEN != page.MARK_OPEN


def test_context_window_at_the_ends_of_a_document_with_trailing_blank_lines():
    text = "\n\nFirst paragraph.\n\nLast paragraph.\n\n"
    ctx = page.context_window(text, text.index("Last"), len(text.rstrip()))
    assert not ctx.cut_after and not ctx.cut_before  # only white space beyond: nothing cut


MANIFEST = {
    "built_at": "2025-05-01T09:30:00+00:00",
    "corpus": "/data/<corpus>",
    "model": {"id": "sentence-transformers/all-MiniLM-L6-v2"},
    "documents": [
        {"path": "chronic-middle-back-pain.txt", "title": "Chronic middle back pain", "chunks": 12},
        {"path": "x.md", "title": "Evil <script>", "chunks": 1},
    ],
    "chunks": 13,
    "skipped": [{"path": "a.pdf", "reason": "unsupported"}],
}


def test_index_status_md():
    now = datetime(2025, 5, 1, 12, 45, tzinfo=timezone.utc)
    md = page.index_status_md(MANIFEST, now)
    assert "2025\\-05\\-01 09\\:30 UTC \\(3 hours ago\\)" in md
    assert "/data/\\<corpus\\>: 2 documents, 13 passages" in md.replace("\\/", "/")
    assert "all\\-MiniLM\\-L6\\-v2" in md
    assert "**Skipped** 1 file" in md


@pytest.mark.parametrize(
    "built, now, age",
    [
        ("2025-05-01T09:30:00+00:00", "2025-05-01T09:30:20+00:00", "just now"),
        ("2025-05-01T09:30:00+00:00", "2025-05-01T09:31:00+00:00", "1 minute ago"),
        ("2025-05-01T09:30:00+00:00", "2025-05-04T09:30:00+00:00", "3 days ago"),
        ("not a date", "2025-05-04T09:30:00+00:00", None),
    ],
)
def test_built_when(built, now, age):
    text = page.built_when({"built_at": built}, datetime.fromisoformat(now))
    assert text == (f"{built[:10]} {built[11:16]} UTC ({age})" if age else "at an unknown time")


def test_indexed_md_escapes_titles_and_counts_the_rest():
    assert page.indexed_md(MANIFEST, shown=1) == (
        "Searching 2 documents: *Chronic middle back pain* and 1 other."
    )
    assert "*Evil \\<script\\>*" in page.indexed_md(MANIFEST)
    assert page.indexed_md({"documents": []}) == "Searching 0 documents."


def test_example_questions_come_from_the_corpus_headings():
    sections = [
        ("chronic-middle-back-pain.txt", None),
        ("chronic-middle-back-pain.txt", "Chronic Middle Back Pain Causes"),
        ("chronic-middle-back-pain.txt", "Chronic Middle Back Pain Causes"),
        ("chronic-middle-back-pain.txt", "Chronic middle back pain"),  # the title: no example
        ("chronic-middle-back-pain.txt", "Chronic Middle Back Pain Treatments"),
        ("x.md", "Install <script>"),
        ("x.md", "Configure"),
        ("x.md", "word " * 30),  # too long to be a question
    ]
    assert page.example_questions(MANIFEST, sections) == [
        "What causes chronic middle back pain?",  # one document, then the next
        "What should I know about install <script>?",
        "How is chronic middle back pain treated?",
        "What should I know about configure?",
    ]  # fmt: skip
    assert page.example_questions(MANIFEST, sections, count=2) == [
        "What causes chronic middle back pain?", "What should I know about install <script>?",
    ]  # fmt: skip


def test_example_questions_fall_back_to_titles():
    other = {"documents": [{"path": "a.md", "title": "Diabetes"}, {"path": "b.md", "title": ""}]}
    about = "What should I know about {}?".format
    assert page.example_questions(other) == [about("diabetes")]
    assert page.example_questions(other, [("a.md", "Insulin")]) == [
        about("insulin"), about("diabetes")]  # fmt: skip
    assert page.example_questions(other, [("a.md", "Symptoms")]) == [
        "What are the symptoms of diabetes?", about("diabetes")]  # fmt: skip
    assert page.example_questions({"documents": []}) == []


@pytest.mark.parametrize("heading,title,question", [
    ("Chronic Middle Back Pain Causes", "", "What causes chronic middle back pain?"),
    ("Chronic Middle Back Pain Treatments", "", "How is chronic middle back pain treated?"),
    ("Chronic Middle Back Pain Advice", "", "What advice is there for chronic middle back pain?"),
    ("Causes of Crohn's Disease", "", "What causes Crohn's disease?"),  # a name keeps its capital
    ("Risk factors for MRI Scans", "", "What are the risk factors for MRI scans?"),
    ("Glaucoma: Symptoms", "", "What are the symptoms of glaucoma?"),
    ("Symptoms", "Glaucoma", "What are the symptoms of glaucoma?"),  # about the document
    ("Treatment", "", None),  # about nothing named
    ("Daily stretches", "", "What should I know about daily stretches?"),
    ("What is (are) Glaucoma ?", "", "What is (are) Glaucoma ?"),  # already a question
    ("How to sit at a desk", "", "How to sit at a desk?"),
    ("Introduction", "", None),  # says nothing a reader asks about
    ("  ", "", None),
])  # fmt: skip
def test_a_heading_is_asked_as_a_reader_would_ask(heading, title, question):
    assert page.as_question(heading, title) == question


def test_card_header_and_results_heading_escape_document_text():
    md = page.card_header_md(2, "Causes <b>", "dir/a_b.txt")
    assert md == "**2** · **Causes \\<b\\>** · *dir/a\\_b\\.txt*".replace("/", "\\/")
    assert page.card_header_md(1, None, "a.txt", "A title") == "**1** · **A title** · *a\\.txt*"
    assert page.card_header_md(3, "S", "b.pdf", "B", page=7) == (
        "**3** · **B\\, S\\, p\\. 7** · *b\\.pdf*"
    )
    assert page.results_heading_md("<img src=x onerror=alert(1)>", 1) == (
        "1 passage for: *\\<img src\\=x onerror\\=alert\\(1\\)\\>*"
    )


def test_source_text_checks_the_recorded_hash(tmp_path):
    import hashlib

    doc = tmp_path / "a.txt"
    doc.write_text("Some text.", encoding="utf-8")
    record = {"path": "a.txt", "sha256": hashlib.sha256(b"Some text.").hexdigest()}
    manifest = {"corpus": str(tmp_path), "documents": [record]}
    assert page.source_text(manifest, "a.txt") == "Some text."
    doc.write_text("Changed.", encoding="utf-8")
    assert page.source_text(manifest, "a.txt") is None  # offsets would be wrong
    assert page.source_text(manifest, "missing.txt") is None
    assert page.source_text({**manifest, "documents": [{"path": "../x.txt"}]}, "../x.txt") is None
    doc.unlink()
    assert page.source_text(manifest, "a.txt") is None


def test_results_heading_says_when_the_documents_do_not_cover_the_question():
    assert page.results_heading_md("capital of France?", 3, answered=False) == (
        "No answer in the documents for: *capital of France\\?*"
    )
    assert "3 passages" not in page.results_heading_md("x", 3, answered=False)


def test_hint_md_shows_commands_as_code_not_backticks():
    md = page.hint_md("add files, then `qa build` again <b>")
    assert md == "add files\\, then `qa build` again \\<b\\>"
    assert page.hint_md("a ` lone backtick") == "a \\` lone backtick"
    assert page.hint_md("`<script>`") == "`<script>`"  # a code span shows its text literally


def test_passage_links_round_trip_and_refuse_nonsense():
    url = page.passage_url("notes/a b&c.md", 10, 42)
    assert url.startswith("?") and url.endswith("#passage")
    from urllib.parse import parse_qsl

    params = dict(parse_qsl(url[1:].removesuffix("#passage")))
    assert page.passage_request(params, ["notes/a b&c.md"]) == page.PassageRequest(
        "notes/a b&c.md", 10, 42
    )
    for bad in [{**params, "doc": "../etc/passwd"}, {**params, "start": "x"},
                {**params, "end": "5"}, {"doc": "notes/a b&c.md"}, {}]:  # fmt: skip
        assert page.passage_request(bad, ["notes/a b&c.md"]) is None


def test_document_parts_mark_the_passage_in_its_document():
    text = "Intro <b>.\n\nThe passage itself. More.\n\nAfter it."
    start = text.index("The passage")
    before, passage, after = page.document_parts(text, start, start + len("The passage itself."))
    assert before == "Intro \\<b\\>\\."
    assert passage == page.PASSAGE_OPEN + "The passage itself\\." + page.MARK_CLOSE
    assert after == "More\\.\n\nAfter it\\."


def test_copy_text_is_the_passage_and_its_citation():
    assert page.copy_text("Some  text\nhere.", "Title", "Section", "a.pdf", 3) == (
        "Some text here.\n\n(Title, Section, p. 3; a.pdf)"
    )


def test_answer_key_changes_with_every_new_question():
    keys = {page.answer_key(q, m, k, d) for q, m, k, d in [
        ("a", "hybrid", 3, None), ("b", "hybrid", 3, None), ("a", "dense", 3, None),
        ("a", "hybrid", 4, None), ("a", "hybrid", 3, ["x.md"])]}  # fmt: skip
    assert len(keys) == 5
    assert page.answer_key("a  b", "hybrid", 3, None) == page.answer_key("a b", "hybrid", 3, [])


def test_added_md():
    assert page.added_md("notes.md", "notes.md", 7) == "Added notes\\.md: 7 passages."
    assert page.added_md("notes.md", "notes-2.md", 1) == (
        "Added notes\\.md as notes\\-2\\.md: 1 passage."
    )
    assert "already in the documents" in page.added_md("a.md", "a.md", 2, existed=True)
    assert "not in the index yet" in page.added_md("a.md", "a.md", None)


def test_results_heading_cuts_a_pasted_article():
    md = page.results_heading_md("word " * 10_000, 2)
    assert md.startswith("2 passages for: *word word")
    assert md.endswith("…*") and len(md) < page.QUESTION_SHOWN_CHARS + 40


def test_stale_md():
    md = page.stale_md("the index is out of date: 1 changed (a<b>.txt)")
    assert md == (
        "The index is out of date\\: 1 changed \\(a\\<b\\>\\.txt\\). Answers come from the "
        "documents as they were when the index was built."
    )


MODES = ["hybrid", "dense", "lexical"]


@pytest.mark.parametrize("params,k,ignored", [
    ({}, None, []),
    ({"k": ["7"]}, 7, []),
    ({"k": [" 7 "]}, 7, []),
    ({"k": ["500"]}, 20, ["k=500: the most is 20 (20 passages shown)"]),
    ({"k": ["0"]}, 1, ["k=0: the fewest is 1 (1 passage shown)"]),
    ({"k": ["-3"]}, 1, ["k=\\-3: the fewest is 1 (1 passage shown)"]),
    ({"k": ["abc"]}, None, ["k=abc is no number of passages (3 shown)"]),
    ({"k": ["2.5"]}, None, ["k=2\\.5 is no number of passages (3 shown)"]),
])  # fmt: skip
def test_a_link_passage_count_is_clamped_and_named(params, k, ignored):
    link = page.link_choices(params, MODES, ["a.md"], "hybrid")
    assert (link.k, link.ignored) == (k, ignored)


def test_a_link_mode_and_documents_that_do_not_exist_are_named():
    params = {"mode": ["foo"], "docs": ["a.md", "nope.md", "<b>x</b>"]}
    link = page.link_choices(params, MODES, ["a.md", "b.md"], "hybrid")
    assert (link.mode, link.docs) == (None, ["a.md"])
    assert link.ignored == [
        "mode=foo is no search mode (meaning and keywords used)",
        "docs=nope\\.md is no indexed document",
        "docs=\\<b\\>x\\<\\/b\\> is no indexed document",  # escaped: a link is anyone's text
    ]
    assert page.link_choices({"mode": ["dense"]}, MODES, [], "hybrid").mode == "dense"
    assert page.link_note_md(link.ignored).startswith("From the link: mode=foo is no search mode")
    assert page.link_note_md([]) == ""
