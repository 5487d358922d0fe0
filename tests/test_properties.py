"""Property tests (hypothesis) for the chunker, over documents as the real loaders produce them.

For any text: every chunk's offsets map back to the loaded text (and, for .txt, to the file);
the chunks cover every non-space character that is not a heading; no chunk is empty; chunking
is deterministic; every chunk fits the window with its heading. Each property runs with a cheap
word counter and with the model's real tokenizer (the session `embedder`).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.ingest.chunking import MAX_HEADING_CHARS, blocks, chunk_document, embed_text
from qa.ingest.loaders import markdown, plain
from qa.ingest.text import normalize

SETTINGS = settings(
    max_examples=60,
    derandomize=True,  # the same examples on every run: a failure is reproducible
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def words(text: str) -> int:
    """A cheap stand-in tokenizer: one token per white-space separated word."""
    return len(text.split())


# -- documents: headings, paragraphs of sentences, odd spaces, scripts, runaway words

LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN0123456789éß東京背痛🙂"
WORD_CHARS = st.sampled_from([*LETTERS, "\u200f"])
word = st.text(WORD_CHARS, min_size=1, max_size=12)
long_word = st.text(WORD_CHARS, min_size=60, max_size=400)
space = st.sampled_from([" ", " ", " ", "\xa0", "\t", "\n", "  "])
sentence = st.builds(
    lambda ws, seps, end: "".join(w + s for w, s in zip(ws, seps, strict=False)).strip() + end,
    st.lists(st.one_of(word, word, word, word, word, long_word), min_size=1, max_size=25),
    st.lists(space, min_size=25, max_size=25),
    st.sampled_from([".", "?", "!", "…", "", '."', ".)"]),
)
paragraph = st.lists(sentence, min_size=1, max_size=6).map(" ".join)
plain_heading = st.lists(
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=1).flatmap(
        lambda c: st.text("abcdefghij", max_size=8).map(lambda rest: c + rest)
    ),
    min_size=1, max_size=6,
).map(" ".join)
md_heading = st.tuples(st.integers(1, 6), plain_heading).map(lambda t: "#" * t[0] + " " + t[1])
blank = st.sampled_from(["\n\n", "\n \n", "\n\n\n", "\r\n\r\n", "\n\xa0\n"])


def documents(heading):
    blocks_ = st.lists(st.one_of(heading, paragraph, paragraph), min_size=1, max_size=6)
    return st.tuples(blocks_, st.lists(blank, min_size=6, max_size=6)).map(
        lambda t: "".join(b + s for b, s in zip(t[0], t[1], strict=False))
    )


any_text = st.text(min_size=0, max_size=1500)  # anything at all, control characters included
txt_texts = st.one_of(documents(plain_heading), any_text)
md_texts = documents(st.one_of(md_heading, plain_heading))


def load(kind: str, text: str):
    data = text.encode("utf-8", "surrogatepass")
    if kind == "txt":
        return plain.load("doc.txt", data)
    return markdown.load("doc.md", data)


def check_properties(document, count_tokens, max_tokens: int) -> None:
    chunks = chunk_document(document, count_tokens, max_tokens)
    text = document.text

    # deterministic, ids in order
    assert chunk_document(document, count_tokens, max_tokens) == chunks
    assert [c.id for c in chunks] == list(range(len(chunks)))

    covered = [False] * len(text)
    for c in chunks:
        # offsets map back to the loaded text, and (plain text) to the file itself
        assert 0 <= c.start < c.end <= len(text)
        assert c.text == text[c.start : c.end]
        if document.kind == "text":
            assert (c.source_start, c.source_end) == (c.start, c.end)
        # no empty chunk, no chunk that starts or ends in white space
        assert c.text.strip() and c.text == c.text.strip()
        # fits the window together with its heading; a heading so long that it leaves fewer than
        # 16 tokens still gets 16 tokens of passage (the chunker's floor)
        heading = count_tokens(normalize(c.section or document.title))
        limit = max(max_tokens, heading + 1 + 16)
        assert count_tokens(embed_text(c.section, document.title, c.text)) <= limit
        for i in range(c.start, c.end):
            covered[i] = True

    # chunks cover every non-space character outside headings; headings are short lines
    for block in blocks(document):
        if block.heading is not None:
            heading = text[block.start : block.end]
            if document.kind == "text":
                assert "\n" not in heading and len(heading) <= MAX_HEADING_CHARS + 20
            for i in range(block.start, block.end):
                covered[i] = True
    missed = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert missed == [], f"not covered: {[text[i] for i in missed[:20]]}"

    # in document order
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)


@SETTINGS
@given(text=txt_texts, max_tokens=st.integers(8, 120))
def test_plain_text_word_counter(text, max_tokens):
    check_properties(load("txt", text), words, max_tokens)


@SETTINGS
@given(text=md_texts, max_tokens=st.integers(8, 120))
def test_markdown_word_counter(text, max_tokens):
    check_properties(load("md", text), words, max_tokens)


@pytest.fixture(scope="module")
def tokens(embedder):
    return embedder.count_tokens


@settings(SETTINGS, max_examples=40)
@given(text=txt_texts, max_tokens=st.integers(16, 254))
def test_plain_text_real_tokenizer(tokens, text, max_tokens):
    check_properties(load("txt", text), tokens, max_tokens)


@settings(SETTINGS, max_examples=25)
@given(text=md_texts, max_tokens=st.integers(16, 254))
def test_markdown_real_tokenizer(tokens, text, max_tokens):
    check_properties(load("md", text), tokens, max_tokens)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-3, 3), max_size=60), st.integers(0, 70))
def test_top_k_is_a_stable_sort_cut_at_k(values, k):
    from qa.store.local_generation import top_k

    scores = np.array(values, dtype=np.float32) / 2  # few distinct values: many ties
    expected = np.argsort(-scores, kind="stable")[:k]
    assert top_k(scores, k).tolist() == expected.tolist()


SENTENCE_WORDS = ["pain", "back", "spine", "muscle", "rest", "the", "of", "ache", "disc", "nerve"]


@settings(max_examples=300, deadline=None)
@given(
    cosines=st.lists(st.integers(0, 40), min_size=1, max_size=12),
    sentences=st.lists(st.lists(st.sampled_from(SENTENCE_WORDS), max_size=6), min_size=12,
                       max_size=12),  # fmt: skip
    asked=st.lists(st.sampled_from(SENTENCE_WORDS), max_size=4),
)
def test_highlights_choose_as_if_every_sentence_had_its_term_bonus(cosines, sentences, asked):
    """`sentence_scores` reads the terms of only the sentences `choose` could pick: the choice
    is the one every sentence's full score gives (cosines on a grid of 0.01 steps, so that
    many sit exactly at the margins)."""
    from qa.ingest.terms import content_terms
    from qa.retrieve import highlight

    n = len(cosines)
    texts = [" ".join(words) for words in sentences[:n]]
    spans = [(10 * i, 10 * i + 5) for i in range(n)]
    query = np.zeros(n, dtype=np.float32)
    query[0] = 1.0
    vectors = np.zeros((n, n), dtype=np.float32)
    vectors[:, 0] = np.array(cosines, dtype=np.float32) / 100  # cosine i = cosines[i] / 100
    terms = content_terms(" ".join(asked))
    full = vectors @ query + highlight.TERM_WEIGHT * np.array(
        [highlight.term_share(terms, t) for t in texts], dtype=np.float32)
    got = highlight.sentence_scores(query, vectors, texts, terms)
    assert highlight.choose(spans, got) == highlight.choose(spans, full)


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300),
       limit=st.sampled_from([4, 8, 16, 254]))  # fmt: skip
def test_truncate_skips_tokenizing_only_texts_that_cannot_be_cut(embedder, text, limit):
    """A text shorter in UTF-8 bytes than the window is returned uncut without being tokenized;
    every other text is cut exactly where its word pieces pass the window."""
    tokenizer = embedder._sizer.model.tokenizer  # the model whose window sizes passages
    pieces = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    cut, was_cut = embedder.truncate(text, limit)
    assert was_cut == (len(pieces) > limit)
    if not was_cut:
        assert cut == text
