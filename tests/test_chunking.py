import re

from qa.ingest.chunking import chunk_document, embed_text, looks_like_heading
from qa.ingest.loaders import Document, load_corpus, markdown

HEADINGS = [
    "Chronic Middle Back Pain Causes",
    "Chronic Middle Back Pain Treatments",
    "Chronic Middle Back Pain Advice",
]


def words(text: str) -> int:
    """A cheap stand-in tokenizer for tests that do not need the model's."""
    return len(text.split())


def test_report_headings_are_sections_not_passages(report_corpus, embedder):
    [doc] = load_corpus(report_corpus).documents
    chunks = chunk_document(doc, embedder.count_tokens, embedder.max_tokens)
    assert len(chunks) == 12  # the report's twelve paragraphs, one passage each
    texts = [" ".join(c.text.split()) for c in chunks]
    for heading in HEADINGS:
        assert heading not in texts
    assert [c.section for c in chunks] == [None] * 3 + [HEADINGS[0]] * 4 + [HEADINGS[1]] * 2 + [
        HEADINGS[2]
    ] * 3
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
        assert c.doc == "chronic-middle-back-pain.txt"
        assert (
            embedder.count_tokens(embed_text(c.section, doc.title, c.text)) <= embedder.max_tokens
        )
    assert [c.id for c in chunks] == list(range(12))


def test_markdown_headings(embedder):
    text = (
        "# Guide\n\nIntro paragraph.\n\n## Causes\nInjury is common.\nSo is strain.\n\n"
        "### Rare causes ###\n\nInfection.\n\nNot a heading line\n\nMore text."
    )
    doc = markdown.load("guide.md", text.encode())
    assert doc.title == "Guide"
    chunks = chunk_document(doc, embedder.count_tokens)
    assert [(c.section, c.text) for c in chunks] == [
        ("Guide", "Intro paragraph."),
        ("Causes", "Injury is common.\nSo is strain."),
        ("Rare causes", "Infection."),
        ("Rare causes", "Not a heading line"),
        ("Rare causes", "More text."),
    ]
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
        assert text[c.source_start : c.source_end] == c.text  # no markup inside: same text
        assert c.page is None


def test_plain_text_heading_rules():
    assert looks_like_heading("Chronic Middle Back Pain Causes")
    assert not looks_like_heading("This ends with a full stop.")
    assert not looks_like_heading("lower-case start")
    assert not looks_like_heading("A very long line " * 10)
    # a short line followed by another heading-like line is not taken as a heading
    doc = Document("a.txt", "Title One\n\nTitle Two\n\nBody text here.", "text", "A")
    chunks = chunk_document(doc, words)
    assert [(c.section, c.text) for c in chunks] == [
        (None, "Title One"),
        ("Title Two", "Body text here."),
    ]


def test_overlong_paragraph_split_at_sentences_with_overlap(embedder):
    sentences = [
        f"Sentence number {i} talks about spinal pain and its many causes." for i in range(80)
    ]
    text = "Long Section\n\n" + " ".join(sentences) + "\n"
    doc = Document("long.txt", text, "text", "Long")
    chunks = chunk_document(doc, embedder.count_tokens, embedder.max_tokens)
    assert len(chunks) > 2
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert c.section == "Long Section"
        assert (
            embedder.count_tokens(embed_text(c.section, doc.title, c.text)) <= embedder.max_tokens
        )
        assert c.text.startswith("Sentence") and c.text.endswith(".")  # sentence boundaries
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start < a.end  # overlap: the next piece repeats the previous one's last sentence
        assert a.start < b.start
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    body_start = text.index("Sentence")
    assert all(i in covered for i in range(body_start, len(text) - 1) if not text[i].isspace())


def test_sentence_longer_than_window_is_cut_at_words(embedder):
    text = " ".join(["word"] * 2000)
    doc = Document("w.txt", text, "text", "W")
    chunks = chunk_document(doc, embedder.count_tokens, embedder.max_tokens)
    assert len(chunks) >= 8
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert (
            embedder.count_tokens(embed_text(c.section, doc.title, c.text)) <= embedder.max_tokens
        )
        assert re.fullmatch(r"word( word)*", c.text)


def test_chunking_is_deterministic(report_corpus, embedder):
    [doc] = load_corpus(report_corpus).documents
    assert chunk_document(doc, embedder.count_tokens) == chunk_document(doc, embedder.count_tokens)
