"""The `qa` page: ask the documents in a browser. Run with `streamlit run app.py` (or `make run`).

A thin shell: search lives in `qa.retrieve.searcher`, presentation in `qa.present.page`, adding
and removing documents in `qa.present.documents`, building in `qa.build`. Every piece of question
or document text goes through `qa.present.page`'s escaping before it reaches `st.markdown`;
nothing here allows HTML. The model and the index load once per server process
(`st.cache_resource`).

Two views: the questions (the default) and, for a link `?doc=PATH&start=N&end=M`, a passage in
its document. The question, the passage count, the mode and the chosen documents live in the URL
(`?q=...&k=...&mode=...&docs=...`), so a link shows the same answer.
"""

from __future__ import annotations

import streamlit as st

from qa import config
from qa.errors import QAError, UsageError, as_qa_error
from qa.present import documents, page
from qa.retrieve import searcher as searching
from qa.retrieve.fusion import DEFAULT_MODE, MODES
from qa.staleness import check as check_staleness  # light: file sizes and times, no model
from qa.store import open_store

st.set_page_config(page_title="qa: ask the documents", page_icon="🔎")

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
    from qa.build import build_index

    with st.status(heading, expanded=True) as status:
        busy = allowed.rebuild and documents.another_build_running(store)
        bar = st.progress(0.0, text="Waiting for another build of this index to finish…" if busy
                          else "Reading the documents and loading the language model…")  # fmt: skip

        def report(done: int, total: int) -> None:
            if total == 0:
                bar.progress(1.0, text="Every passage was embedded before")
            else:
                bar.progress(done / total, text=f"Embedding passages: {done:,} of {total:,}")

        try:
            summary = build_index(corpus, index_dir, on_progress=report, wait=True,
                                  on_reading=reading_bar(bar))  # fmt: skip
        except (QAError, OSError) as exc:  # OSError: an index folder it cannot create or write
            bar.empty()  # no progress line is left behind
            status.update(label="The index could not be built", state="error", expanded=False)
            st.session_state.build_error = as_qa_error(exc)
            return False
        status.update(label=page.escape_markdown(summary.line()), state="complete", expanded=False)
    st.session_state.pop("build_error", None)
    return True  # a loaded Searcher switches to the new build itself (Searcher.refresh)


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
    st.button("Dismiss", key="dismiss", type="tertiary", on_click=clear_notices)


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
    notices: list[tuple[str, str]] = []
    if action == "add":
        st.session_state.upload_round = st.session_state.get("upload_round", 0) + 1
        saved = []
        for name, data in payload:
            bar = st.progress(0.0, text=page.escape_markdown(f"Reading {name}…"))
            try:
                saved.append(documents.save_upload(corpus, name, data, on_page=reading_bar(bar)))
            except QAError as exc:
                notices.append(("error", error_md(exc)))
            bar.empty()
        if any(not s.existed for s in saved) and not build("Adding to the index…"):
            notices.append(("error", error_md(st.session_state.pop("build_error"))))
        manifest = live_manifest() if saved else {}
        for s in saved:
            count = documents.passages_of(manifest, s.path)
            notices.append(("success", page.added_md(s.name, s.path, count, s.existed)))
    else:
        try:
            documents.remove(corpus, payload)
        except QAError as exc:
            notices.append(("error", error_md(exc)))
        else:
            if build("Removing from the index…"):
                notices.append(("success", page.removed_md(payload)))
            else:
                notices.append(("error", error_md(st.session_state.pop("build_error"))))
    st.session_state.notices = notices
    st.rerun()


# --- answers -------------------------------------------------------------------------------------


def card(hit, answer, key: str, in_context: bool) -> None:
    """One result: rank and citation, relevance bar, the passage with its highlights marked,
    links to the passage in its document and to copy it, and (optionally) its context."""
    rel = page.relevance(page.strength(hit, answer), answer.answered)
    with st.container(border=True):
        st.markdown(page.card_header_md(hit.rank, hit.section, hit.doc, hit.title, hit.page))
        st.progress(rel.fraction, text=rel.text)
        st.markdown(page.marked_md(hit.text, hit.highlights if rel.highlight else ()))
        with st.container(horizontal=True):
            st.link_button("Open in the document", page.passage_url(hit.doc, hit.start, hit.end),
                           icon=":material/open_in_new:", type="tertiary")  # fmt: skip
            with st.popover("Copy text", icon=":material/content_copy:", type="tertiary",
                            key=f"copy-{key}-{hit.rank}"):  # fmt: skip
                st.caption("Copy with the button at the top right:")
                text = page.copy_text(hit.text, hit.title, hit.section, hit.doc, hit.page)
                st.code(text, language=None, wrap_lines=True)
        if not in_context:
            return
        with st.expander("Show in context", key=f"context-{key}-{hit.rank}"):
            text = document_text(searcher.generation.id, hit.doc, searcher.manifest)
            if text is None:
                st.caption(page.DOCUMENT_CHANGED)
            else:
                st.markdown(page.context_md(page.context_window(text, hit.start, hit.end)))


def ask(question: str) -> None:
    """Put an example question in the box (a button callback)."""
    st.session_state.q = question
    clear_notices()


def from_url(key: str, options: list[str], many: bool = False) -> None:
    """Seed a choice from the link the session was opened with (`?mode=dense`, `?docs=a.md`).

    The mode and document choices show labels, not the values a link holds, so they are kept
    in the URL here rather than bound to it (values a link holds that are no option are
    ignored).
    """
    if st.session_state.get("seeded-" + key):
        return
    st.session_state["seeded-" + key] = True
    picked = [v for v in st.query_params.get_all(key) if v in options]
    if picked:
        st.session_state[key] = picked if many else picked[0]


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
    if text is None or request.end > len(text):
        st.warning(page.DOCUMENT_CHANGED)
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
corpus = config.corpus_dir()
store = open_store(index_dir)
allowed = documents.access(store, corpus)

viewing = "doc" in st.query_params  # a link to a passage in its document
if not viewing:
    st.title("Ask the documents")

if store.current() is None:  # a fresh clone, or an index folder that was emptied
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

with st.sidebar:
    st.subheader("Search")
    modes = [DEFAULT_MODE] + [m for m in MODES if m != DEFAULT_MODE]  # the default first
    from_url("mode", modes)
    mode = st.radio(
        "Mode",
        modes,
        format_func=page.mode_label,
        key="mode",
        help="How passages are found: by meaning, by keywords, or both (the default).",
    )
    to_url("mode", mode, DEFAULT_MODE)
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
box, count = st.columns([4, 1], vertical_alignment="bottom")
box.text_input(
    "Your question",
    key="q",
    bind="query-params",
    max_chars=MAX_QUESTION_CHARS,
    on_change=clear_notices,
    placeholder=f"e.g. {examples[0]}" if examples else "Type a question",
)
k = count.number_input(
    "Passages", min_value=1, max_value=20, value=3, step=1, key="k", bind="query-params"
)
choices = page.document_choices(searcher.documents())
chosen = []
if len(choices) > 1:
    from_url("docs", list(choices), many=True)
    chosen = st.multiselect(
        "Search in",
        options=list(choices),
        format_func=lambda path: choices.get(path, path),
        placeholder="All documents",
        key="docs",
    )
    to_url("docs", chosen, [])

if examples:
    st.caption("Try one of these (from the documents):")
    with st.container(horizontal=True):
        for i, example in enumerate(examples):
            label = page.escape_markdown(example)
            st.button(label, key=f"example-{i}", on_click=ask, args=(example,))

question = st.session_state.get("q") or ""
try:
    searching.clean_question(question)
except UsageError:  # an empty question: say what to do, not what went wrong
    st.info(page.EMPTY_HINT)
    st.stop()
try:
    answer = searcher.ask(question, int(k), mode=mode, doc=page.doc_patterns(chosen, choices))
except QAError as exc:
    show_error(exc)
    st.stop()

key = page.answer_key(question, answer.mode, int(k), chosen)
st.markdown(page.results_heading_md(question, len(answer.hits), answer.answered))
if answer.truncated:
    st.caption("Your question is longer than the model reads; only its beginning was used.")
if not answer.hits:
    st.info(page.NO_PASSAGES)
elif answer.answered:
    for hit in answer.hits:
        card(hit, answer, key, in_context=True)
else:
    st.warning(page.NOT_COVERED)
    with st.expander(f"The closest passages ({len(answer.hits)})", key=f"closest-{key}"):
        for hit in answer.hits:
            card(hit, answer, key, in_context=False)  # expanders do not nest
