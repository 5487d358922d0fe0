"""The `qa` page: ask the documents in a browser. Run with `streamlit run app.py` (or `make run`).

A thin shell: search lives in `qa.retrieve.searcher`, presentation in `qa.present.page`, adding
and removing documents in `qa.present.documents`, building in `qa.build`. Every piece of question
or document text goes through `qa.present.page`'s escaping before it reaches `st.markdown`;
nothing here allows HTML (the one `st.html` is the page's own constant CSS, `page.STYLE`). The
model and the index load once per server process (`st.cache_resource`).

Two views: the questions (the default) and, for a link `?doc=PATH&start=N&end=M`, a passage in
its document. The question, the passage count, the mode and the chosen documents live in the URL
(`?q=...&k=...&mode=...&docs=...`), so a link shows the same answer.
"""

from __future__ import annotations

import streamlit as st

from qa import config
from qa.errors import QAError, UsageError, as_qa_error
from qa.present import documents, page
from qa.present.wording import missing_line
from qa.retrieve import searcher as searching
from qa.retrieve.fusion import DEFAULT_MODE, MODES
from qa.staleness import check as check_staleness  # light: file sizes and times, no model
from qa.store import open_store

st.set_page_config(page_title="qa: ask the documents", page_icon="🔎",
                   menu_items={"About": page.ABOUT_MD})  # the menu, with its light/dark choice
st.html(page.STYLE)  # the page's own CSS (a constant): compact top, copy buttons for touch

MAX_QUESTION_CHARS = searching.MAX_QUESTION_CHARS


@st.cache_resource(show_spinner="Loading the language model and the index…")
def load_searcher(index_dir: str):
    """The Searcher for an index folder: model and index, loaded once per server process."""
    searcher = searching.Searcher(index_dir)
    searcher.encode_question("warm up")  # load the model now, not on the first question
    return searcher


@st.cache_data(max_entries=64, show_spinner=False)
def document_text(generation: str, doc: str, _manifest: dict) -> str | None:
    """A document's text as indexed (cached per generation and document)."""
    return page.source_text(_manifest, doc)


@st.cache_data(max_entries=4, show_spinner=False)
def corpus_sections(generation: str, _generation, limit: int = 2000) -> list:
    """(document, section heading) of the first passages of a generation, for the examples."""
    size = min(int(_generation.manifest.get("chunks", 0)), limit)
    return [(c.doc, c.section) for c in _generation.passages(list(range(size))).chunks]


# --- building, errors and notices ---------------------------------------------------------------


def build(heading: str) -> bool:
    """Build the index with a visible progress bar; True when it worked. A failure is kept in
    the session (`build_error`), for the caller to show in plain view (`show_error`)."""
    try:
        build_shown(heading)
    except QAError as exc:
        st.session_state.build_error = exc
        return False
    st.session_state.pop("build_error", None)
    return True  # a loaded Searcher switches to the new build itself (Searcher.refresh)


def build_shown(heading: str, **options) -> None:
    """Build the index from the page's documents folder with a visible progress bar
    (`options` go to `build_index`).

    Raises:
        QAError: the build failed (an OSError too: an index folder it cannot create or write).
    """
    from qa.build import build_index

    with st.status(heading, expanded=True) as status:
        busy = not options.get("locked") and documents.another_build_running(store)
        bar = st.progress(0.0, text="Waiting for another build of this index to finish…" if busy
                          else "Reading the documents and loading the language model…")  # fmt: skip

        def report(done: int, total: int) -> None:
            if total == 0:
                bar.progress(1.0, text="Every passage was embedded before")
            else:
                bar.progress(done / total, text=f"Embedding passages: {done:,} of {total:,}")

        try:
            summary = build_index(corpus, store, on_progress=report, wait=True,
                                  on_reading=reading_bar(bar), **options)  # fmt: skip
        except (QAError, OSError) as exc:  # OSError: an index folder it cannot create or write
            bar.empty()  # no progress line is left behind
            status.update(label="The index could not be built", state="error", expanded=False)
            raise as_qa_error(exc) from None
        status.update(label=page.escape_markdown(summary.line("passage")), state="complete",
                      expanded=False)  # fmt: skip


def reading_bar(bar):
    """A callback that shows the pages of a scan being recognised on `bar`."""

    def report(name: str, done: int, total: int) -> None:
        bar.progress(done / total, text=page.escape_markdown(
            f"Recognising the text of {name} (OCR): page {done:,} of {total:,}"))

    return report


def show_error(exc: QAError) -> None:
    """A user-fixable error in plain view: its message, then its hint."""
    st.error(error_md(exc))


def live_manifest() -> dict:
    """The live build's manifest, or {} when there is none (nothing indexed yet)."""
    try:
        return store.manifest()
    except QAError:
        return {}


def error_md(exc: QAError) -> str:
    """An error's message and hint as safe Markdown (`commands` shown as code)."""
    hint = exc.hint[:1].upper() + exc.hint[1:] if exc.hint else ""
    return page.hint_md(exc.message) + (f"  \n{page.hint_md(hint)}" if hint else "")


def retry() -> None:
    """Forget a failed build, so that the next run tries again."""
    st.session_state.pop("build_error", None)


def show_notices() -> None:
    """What the last added or removed documents came to; stays until dismissed or asked."""
    notices = st.session_state.get("notices")
    if not notices:
        return
    for kind, body in notices:
        (st.success if kind == "success" else st.error)(body)
    st.button("Dismiss", key="dismiss", on_click=clear_notices)


def clear_notices() -> None:
    st.session_state.pop("notices", None)


# --- adding and removing documents -------------------------------------------------------------


def uploader(allowed: documents.Access) -> None:
    """The "Add documents" control; files picked are handled in `handle_pending`."""
    if not allowed.manage:
        st.caption(page.escape_markdown(f"Adding documents is off: {allowed.reason}."))
        return
    files = st.file_uploader(
        "Add documents",
        accept_multiple_files=True,
        key=f"upload-{st.session_state.get('upload_round', 0)}",
        max_upload_size=max(1, config.upload_max_bytes() // (1024 * 1024)),
        help=f"{documents.KINDS} files; they are saved in the documents folder and indexed.",
    )
    if files:
        st.session_state.pending = ("add", [(f.name, f.getvalue()) for f in files])


def ask_remove(path: str) -> None:
    st.session_state.confirm_remove = path


def confirm_remove(path: str) -> None:
    st.session_state.pop("confirm_remove", None)
    st.session_state.pending = ("remove", path)


def cancel_remove() -> None:
    st.session_state.pop("confirm_remove", None)


def documents_panel(manifest: dict, allowed: documents.Access) -> None:
    """Each indexed document with its passages and date; a remove button with a confirmation."""
    rows = documents.rows(manifest)
    with st.expander(f"Documents ({len(rows):,})", expanded=len(rows) <= 5):
        for i, row in enumerate(rows):
            with st.container(horizontal=True, vertical_alignment="center"):
                st.markdown(page.document_row_md(row))
                if allowed.manage:
                    st.button(
                        "Remove", key=f"remove-{i}", type="tertiary", icon=":material/delete:",
                        on_click=ask_remove, args=(row.path,), disabled=len(rows) == 1,
                        help="The index needs at least one document" if len(rows) == 1 else None,
                    )  # fmt: skip
            if allowed.manage and st.session_state.get("confirm_remove") == row.path:
                st.warning(page.confirm_remove_md(row.path))
                with st.container(horizontal=True):
                    st.button("Remove", key="confirm-remove", type="primary",
                              on_click=confirm_remove, args=(row.path,))  # fmt: skip
                    st.button("Cancel", key="cancel-remove", on_click=cancel_remove)


def handle_pending() -> None:
    """Add the uploaded files or remove the confirmed document, rebuild, and rerun with the
    outcome kept as notices."""
    pending = st.session_state.pop("pending", None)
    if pending is None or not allowed.manage:  # turned off since the files were picked
        return
    action, payload = pending
    st.session_state.pop("build_error", None)  # an earlier build's failure: this one is news
    notices: list[tuple[str, str]] = []
    if action == "add":
        st.session_state.upload_round = st.session_state.get("upload_round", 0) + 1
        bars: list = []

        def reading(name: str):
            bars.append(st.progress(0.0, text=page.escape_markdown(f"Reading {name}…")))
            return reading_bar(bars[-1])

        added = documents.add(store, corpus, payload,
                              lambda: build_shown("Adding to the index…", locked=True),
                              reading)  # fmt: skip
        for bar in bars:
            bar.empty()
        notices.extend(("error", error_md(exc)) for exc in added.refused)
        if added.error is not None:
            notices.append(("error", error_md(added.error)))
        manifest = live_manifest() if added.saved else {}
        for s in added.saved:
            count = documents.passages_of(manifest, s.path)
            notices.append(("success", page.added_md(s.name, s.path, count, s.existed)))
    else:
        try:
            documents.remove(store, corpus, payload, lambda without: build_shown(
                "Removing from the index…", without=without, locked=True))  # fmt: skip
        except QAError as exc:
            notices.append(("error", error_md(exc)))
        else:
            notices.append(("success", page.removed_md(payload)))
    st.session_state.notices = notices
    st.rerun()


# --- answers -------------------------------------------------------------------------------------


def card(hit, answer, key: str) -> None:
    """One result: rank and citation, relevance bar, the passage with its highlights marked, a
    link to the passage in its document, its text to copy, and its context."""
    rel = page.relevance(page.strength(hit, answer), answer.answered)
    with st.container(border=True):
        st.markdown(page.card_header_md(hit.rank, hit.section, hit.doc, hit.title, hit.page))
        st.progress(rel.fraction, text=rel.text)
        st.markdown(page.marked_md(hit.text, hit.highlights if rel.highlight else ()))
        st.link_button("Open in the document", page.passage_url(hit.doc, hit.start, hit.end),
                       icon=":material/open_in_new:", type="tertiary")  # fmt: skip
        with st.expander("Copy text", icon=":material/content_copy:",
                         key=f"copy-{key}-{hit.rank}"):  # fmt: skip
            st.caption(page.COPY_HINT)
            text = page.copy_text(hit.text, hit.title, hit.section, hit.doc, hit.page)
            st.code(text, language=None, wrap_lines=True)
        with st.expander("Show in context", key=f"context-{key}-{hit.rank}"):
            text = document_text(searcher.generation.id, hit.doc, searcher.manifest)
            if text is None:
                st.caption(page.DOCUMENT_CHANGED)
            else:
                st.markdown(page.context_md(page.context_window(text, hit.start, hit.end)))


def ask(question: str) -> None:
    """Put an example question in the box (a button callback)."""
    st.session_state.q = question
    asked()


def asked() -> None:
    """A new question: the notices and the note on the link are done with."""
    clear_notices()
    st.session_state.pop("link_note", None)


def from_link(choices: dict[str, str]) -> None:
    """On the session's first run, seed the passage count, mode and documents from the link it
    was opened with (`?k=5&mode=dense&docs=a.md`), clamped or left out where they make no sense
    (`page.link_choices`); what was not used as it stood is kept for one quiet note.

    These choices show labels, not the values a link holds, so they are kept in the URL here
    (`to_url`) rather than bound to it."""
    if st.session_state.get("seeded"):
        return
    st.session_state.seeded = True
    params = {name: st.query_params.get_all(name) for name in ("k", "mode", "docs")}
    link = page.link_choices(params, list(MODES), list(choices), DEFAULT_MODE)
    if link.k is not None:
        st.session_state.k = link.k
    if link.mode is not None:
        st.session_state.mode = link.mode
    if link.docs:
        st.session_state.docs = link.docs
    st.session_state.link_note = page.link_note_md(link.ignored)


def to_url(key: str, value, default) -> None:
    """Keep a choice in the URL (left out when it is the default)."""
    if value == default:
        st.query_params.pop(key, None)
    elif st.query_params.get_all(key) != (value if isinstance(value, list) else [value]):
        st.query_params[key] = value


def document_view() -> None:
    """A passage in its document (a page link `?doc=...&start=...&end=...`)."""
    st.link_button("Ask the documents", "./", icon=":material/search:", type="tertiary")
    names = [d["path"] for d in searcher.documents()]
    request = page.passage_request(st.query_params, names)
    if request is None:
        st.error(page.BROKEN_LINK)
        return
    record = next(d for d in searcher.documents() if d["path"] == request.doc)
    st.title(page.escape_markdown(record["title"]))
    st.caption(page.escape_markdown(request.doc))
    download = page.original_download(searcher.original_path(request.doc))
    if download is not None:
        st.download_button(download.label, download.read, download.file_name, download.mime,
                           key="download", on_click="ignore")  # fmt: skip
    text = document_text(searcher.generation.id, request.doc, searcher.manifest)
    if text is None:
        st.warning(page.DOCUMENT_CHANGED)
        return
    if request.end > len(text):  # the text is the one indexed: the offsets are not its own
        st.error(page.BROKEN_LINK)
        return
    before, passage, after = page.document_parts(text, request.start, request.end)
    if before:
        st.markdown(before)
    with st.container(border=True):
        st.subheader("The passage", anchor="passage")
        st.markdown(passage)
    if after:
        st.markdown(after)


# --- the page ------------------------------------------------------------------------------------

index_dir = config.index_location()  # a folder or a postgresql:// URL
viewing = "doc" in st.query_params  # a link to a passage in its document
if not viewing:
    st.title("Ask the documents")

try:  # a malformed PostgreSQL URL, a database that cannot be reached: said, never a traceback
    store = open_store(index_dir)
    allowed = documents.access(store, config.corpus_setting())
    live = store.current()
except QAError as exc:
    show_error(exc)
    st.stop()
corpus = allowed.corpus  # the folder the index was built from: the page acts on no other

if live is None:  # a fresh clone, or an index folder that was emptied
    if "build_error" not in st.session_state and allowed.rebuild:
        build("Building the index (first start only)…")
    if store.current() is None:
        show_notices()  # e.g. a file refused
        show_error(st.session_state.get("build_error") or QAError(
            f"there is no index at {store.location}", "build it with `qa build`"))  # fmt: skip
        uploader(allowed)
        handle_pending()
        st.button("Try again", key="retry", on_click=retry)
        st.stop()

try:
    searcher = load_searcher(str(index_dir))
    searcher.refresh()  # a `qa build` elsewhere went live: answer from it
except (QAError, OSError) as exc:
    show_error(as_qa_error(exc))
    if allowed.rebuild and st.button("Rebuild the index") and build("Rebuilding the index…"):
        st.rerun()
    if "build_error" in st.session_state:
        show_error(st.session_state.build_error)
    st.stop()

if viewing:
    document_view()
    st.stop()

manifest = searcher.manifest
st.markdown(page.indexed_md(manifest))
st.caption(page.DISCLAIMER)
activity = st.container()  # builds started from the sidebar show their progress here

staleness = check_staleness(index_dir)
if staleness.stale:
    with st.container(border=True):
        st.warning(page.stale_md(staleness.summary()))
        if allowed.rebuild and st.button("Rebuild the index", key="rebuild"):
            if build("Rebuilding…"):
                st.rerun()
        elif not allowed.rebuild:
            st.caption(page.escape_markdown(f"Rebuilding here is off: {allowed.reason}."))

choices = page.document_choices(searcher.documents())
from_link(choices)

with st.sidebar:
    st.subheader("Search")
    modes = [DEFAULT_MODE] + [m for m in MODES if m != DEFAULT_MODE]  # the default first
    mode = st.radio(
        "Mode",
        modes,
        format_func=page.mode_label,
        key="mode",
        help="How passages are found: by meaning, by keywords, or both (the default).",
    )
    to_url("mode", mode, DEFAULT_MODE)
    low, high = page.K_RANGE
    st.session_state.setdefault("k", page.DEFAULT_K)
    k = int(st.number_input("Passages", min_value=low, max_value=high, step=1, key="k"))
    to_url("k", str(k), str(page.DEFAULT_K))
    st.caption(page.THEME_HINT)
    st.subheader("Documents")
    uploader(allowed)
    documents_panel(manifest, allowed)
    st.subheader("Index")
    st.markdown(page.index_status_md(manifest))
    if not staleness.checked:
        st.caption(page.escape_markdown("Cannot check for changes: " + staleness.summary()))

with activity:
    handle_pending()
    show_notices()
    if "build_error" in st.session_state:
        show_error(st.session_state.pop("build_error"))

examples = page.example_questions(manifest, corpus_sections(searcher.generation.id,
                                                            searcher.generation))  # fmt: skip
st.text_input(
    "Your question",
    key="q",
    bind="query-params",
    max_chars=MAX_QUESTION_CHARS,
    on_change=asked,
    placeholder=f"e.g. {examples[0]}" if examples else "Type a question",
)
chosen = []
if len(choices) > 1:
    chosen = st.multiselect(
        "Search in",
        options=list(choices),
        format_func=lambda path: choices.get(path, path),
        placeholder="All documents",
        key="docs",
    )
to_url("docs", chosen, [])  # (a link's documents that are not indexed leave the URL)
if st.session_state.get("link_note"):
    st.caption(st.session_state.link_note)


def show_examples(lead: str) -> None:
    """The example questions, as buttons that ask them."""
    if not examples:
        return
    st.caption(lead)
    with st.container(horizontal=True):
        for i, example in enumerate(examples):
            label = page.escape_markdown(example)
            st.button(label, key=f"example-{i}", on_click=ask, args=(example,))


question = st.session_state.get("q") or ""
try:
    searching.clean_question(question)
except UsageError:  # an empty question: say what to do, not what went wrong
    show_examples("Try one of these (from the documents):")
    st.info(page.EMPTY_HINT)
    st.stop()
try:
    answer = searcher.ask(question, k, mode=mode, doc=page.doc_patterns(chosen, choices))
except QAError as exc:
    show_error(exc)
    st.stop()

# The answer comes straight under the question, and the examples after it: on a phone the first
# passage is on screen as soon as it is asked (tests/test_browser.py measures it).
key = page.answer_key(question, answer.mode, k, chosen)
st.markdown(page.results_heading_md(question, len(answer.hits), answer.answered))
if answer.truncated:
    st.caption("Your question is longer than the model reads; only its beginning was used.")
if answer.missing_terms:
    st.caption(page.escape_markdown(missing_line(answer.missing_terms)))
if not answer.hits:
    st.info(page.NO_PASSAGES)
elif answer.answered:
    for hit in answer.hits:
        card(hit, answer, key)
else:
    st.warning(page.NOT_COVERED)
    label = f"Show the closest passages ({len(answer.hits)})"
    if st.toggle(label, key=f"closest-{key}"):  # not an expander: the cards hold expanders
        for hit in answer.hits:
            card(hit, answer, key)
show_examples("More questions from the documents:")
