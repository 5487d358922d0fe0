"""The `qa` page: ask the documents in a browser. Run with `streamlit run app.py` (or `make run`).

A thin shell: search lives in `qa.retrieve.searcher`, presentation in `qa.present.page`. Every
piece of question or document text goes through `qa.present.page`'s escaping before it reaches
`st.markdown`; nothing here allows HTML. The model and the index load once per server process
(`st.cache_resource`).
"""

from __future__ import annotations

import streamlit as st

from qa import config
from qa.errors import QAError, UsageError
from qa.present import page
from qa.retrieve.fusion import DEFAULT_MODE, MODES
from qa.retrieve.searcher import clean_question
from qa.staleness import check as check_staleness  # light: file sizes and times, no model
from qa.store import open_store

st.set_page_config(page_title="qa: ask the documents", page_icon="🔎")


@st.cache_resource(show_spinner="Loading the language model and the index…")
def load_searcher(index_dir: str):
    """The Searcher for an index folder: model and index, loaded once per server process."""
    from qa.retrieve.searcher import Searcher

    searcher = Searcher(index_dir)
    searcher.encode_question("warm up")  # load the model now, not on the first question
    return searcher


@st.cache_data(max_entries=64, show_spinner=False)
def document_text(generation: str, doc: str, _manifest: dict) -> str | None:
    """A document's text as indexed (cached per generation and document)."""
    return page.source_text(_manifest, doc)


def build(index_dir, heading: str) -> bool:
    """Build the index with a visible progress bar; True when it worked."""
    from qa.build import build_index

    corpus = config.corpus_dir()
    with st.status(heading, expanded=True) as status:
        st.markdown(f"Reading the documents in {page.escape_markdown(str(corpus))}")
        bar = st.progress(0.0, text="Loading the language model…")

        def report(done: int, total: int) -> None:
            if total == 0:
                bar.progress(1.0, text="Every passage was embedded before")
            else:
                bar.progress(done / total, text=f"Embedding passages: {done:,} of {total:,}")

        try:
            summary = build_index(corpus, index_dir, on_progress=report, wait=True)
        except QAError as exc:
            status.update(label="The index could not be built", state="error")
            show_error(exc)
            return False
        status.update(label=page.escape_markdown(summary.line()), state="complete", expanded=False)
    return True  # a loaded Searcher switches to the new build itself (Searcher.refresh)


def show_error(exc: QAError) -> None:
    """A user-fixable error: its message and hint, as text (they may quote paths or input)."""
    st.error(page.escape_markdown(exc.message))
    if exc.hint:
        st.caption(page.escape_markdown(exc.hint))


def card(hit, mode: str, best: float | None, in_context: bool) -> None:
    """One result: rank and citation, relevance bar, the passage with its highlights marked,
    the original file, and (optionally) the passage in the context of its document."""
    with st.container(border=True):
        st.markdown(page.card_header_md(hit.rank, hit.section, hit.doc, hit.title, hit.page))
        rel = page.relevance(hit.score, mode, best)
        st.progress(rel.fraction, text=rel.text)
        st.markdown(page.marked_md(hit.text, hit.highlights))
        download = page.original_download(searcher.original_path(hit.doc))
        if download is not None:
            st.download_button(
                download.label, download.read, download.file_name, download.mime,
                key=f"download-{hit.rank}", on_click="ignore",
            )  # fmt: skip
        if not in_context:
            return
        with st.expander("Show in context"):
            text = document_text(searcher.generation.id, hit.doc, searcher.manifest)
            if text is None:
                st.caption(
                    "The document changed or moved since the index was built; "
                    "rebuild the index to read this passage in context."
                )
            else:
                st.markdown(page.context_md(page.context_window(text, hit.start, hit.end)))


def ask(question: str) -> None:
    """Put an example question in the box (a button callback)."""
    st.session_state.question = question


index_dir = config.index_dir()
st.title("Ask the documents")

if open_store(index_dir).current() is None:
    if not build(index_dir, "Building the index (first start only)…"):
        st.stop()

try:
    searcher = load_searcher(str(index_dir))
    searcher.refresh()  # a `qa build` elsewhere went live: answer from it
except QAError as exc:
    show_error(exc)
    if st.button("Rebuild the index") and build(index_dir, "Rebuilding the index…"):
        st.rerun()
    st.stop()

manifest = searcher.manifest
st.markdown(page.indexed_md(manifest))
st.caption(page.DISCLAIMER)

staleness = check_staleness(index_dir)
if staleness.stale:
    with st.container(border=True):
        st.warning(page.stale_md(staleness.summary()))
        if st.button("Rebuild the index", key="rebuild") and build(index_dir, "Rebuilding…"):
            st.rerun()

with st.sidebar:
    st.subheader("Search")
    mode = st.radio(
        "Mode",
        [DEFAULT_MODE] + [m for m in MODES if m != DEFAULT_MODE],  # the default first
        format_func=page.mode_label,
        key="mode",
        help="How passages are found: by meaning, by keywords, or both (the default).",
    )
    st.subheader("Index")
    st.markdown(page.index_status_md(manifest))
    if not staleness.checked:
        st.caption(page.escape_markdown("Cannot check for changes: " + staleness.summary()))

examples = page.example_questions(manifest)
box, count = st.columns([4, 1], vertical_alignment="bottom")
box.text_input(
    "Your question",
    key="question",
    placeholder=f"e.g. {examples[0]}" if examples else "Type a question",
)
k = count.number_input("Passages", min_value=1, max_value=20, value=3, step=1, key="k")
choices = page.document_choices(searcher.documents())
chosen = []
if len(choices) > 1:
    chosen = st.multiselect(
        "Search in",
        options=list(choices),
        format_func=lambda path: choices.get(path, path),
        placeholder="All documents",
        key="docs",
    )

if examples:
    st.caption("Try one of these:")
    with st.container(horizontal=True):
        for i, example in enumerate(examples):
            label = page.escape_markdown(example)
            st.button(label, key=f"example-{i}", on_click=ask, args=(example,))

question = st.session_state.get("question", "")
try:
    clean_question(question)
except UsageError:  # an empty question: say what to do, not what went wrong
    st.info(page.EMPTY_HINT)
    st.stop()
try:
    answer = searcher.ask(question, int(k), mode=mode, doc=page.doc_patterns(chosen, choices))
except QAError as exc:
    show_error(exc)
    st.stop()

st.markdown(page.results_heading_md(question, len(answer.hits)))
if answer.truncated:
    st.caption("Your question is longer than the model reads; only its beginning was used.")
best = answer.hits[0].score if answer.hits else None
if not answer.hits:
    st.info(page.NO_PASSAGES)
elif answer.answered:
    for hit in answer.hits:
        card(hit, answer.mode, best, in_context=True)
else:
    st.warning(page.NOT_COVERED)
    with st.expander(f"The closest passages ({len(answer.hits)})", expanded=False):
        for hit in answer.hits:
            card(hit, answer.mode, best, in_context=False)  # expanders do not nest
