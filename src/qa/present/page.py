"""Presentation for the Streamlit page: everything about how answers look, testable without it.

`app.py` is a thin shell: it lays out widgets and hands every piece of text to this module
first. Functions named `*_md` return Markdown that is safe to give `st.markdown` as it is:
every character of question or document text in it has been escaped by `escape_markdown`,
so a question or document containing `<script>` or `<img onerror=...>` shows literally.
Nothing here imports Streamlit or torch.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from qa.ingest.chunking import paragraphs
from qa.present.citation import cite
from qa.retrieve.docfilter import exact

DISCLAIMER = (
    "This page finds passages in the documents; it does not give medical advice. "
    "Ask a doctor about your own health."
)
EMPTY_HINT = "Type a question and press Enter, or click one of the examples."
NOT_COVERED = "The documents do not seem to cover this question."
NO_PASSAGES = "No passage matches. Try other words, or another search mode."
DOCUMENT_CHANGED = (
    "The document changed or moved since the index was built; rebuild the index to read "
    "this passage in its document."
)
BROKEN_LINK = (
    "This link does not lead to a passage of an indexed document (the index may have been "
    "rebuilt since the link was made). Ask the question again."
)

COPY_HINT = "Copy with the button at the top right of the text (or select the text)."
THEME_HINT = (
    "Light or dark: the page follows your system; to choose, open the menu (⋮) at the top right."
)
ABOUT_MD = "**qa**: ask the documents. Finds the passages that answer a question, offline."
STYLE = Path(__file__).with_name("page.css").read_text(encoding="utf-8").strip()

MODE_LABELS = {
    "hybrid": "Meaning and keywords",
    "dense": "Meaning only",
    "lexical": "Keywords only (BM25)",
}


def mode_label(mode: str) -> str:
    """A retrieval mode in words, for the mode choice."""
    return MODE_LABELS.get(mode, mode)


# CommonMark lets a backslash escape any ASCII punctuation character, and then shows it
# literally: that covers Markdown syntax (* _ ` # [ ] ...), HTML (< > &), Streamlit's
# directives (:red[...]) and LaTeX ($).
_PUNCTUATION = frozenset(string.punctuation)
# Streamlit also rewrites text *after* parsing: emoji and icon shortcodes (":smile:",
# ":material/home:") and arrows ("->" to an arrow glyph). An invisible word joiner after
# the first character keeps such text as it was typed.
WORD_JOINER = "\u2060"
_SHORTCODE = re.compile(r":(?=[\w+-]+:|material/)")
_ARROWS = re.compile(r"(?:(?<=\s)|^)(<->|->|<-|--|>=|<=|~=)(?=\s|$)")
_LINE_SPACE = re.compile(r"[^\S\n]+")  # white space other than line breaks

# How marked text is shown: the sentences that answer the question, and (in "Show in context"
# and the document view) the passage inside its document, each with its own colour. The
# colours are set for light and dark themes in .streamlit/config.toml, chosen so that text on
# them keeps a contrast of at least 4.5:1 (WCAG AA; tests/test_browser.py measures it).
MARK_OPEN, MARK_CLOSE = ":orange-background[", "]"
PASSAGE_OPEN = ":violet-background["
HIGHLIGHT = (MARK_OPEN, MARK_CLOSE)
PASSAGE = (PASSAGE_OPEN, MARK_CLOSE)


def escape_markdown(text: str) -> str:
    """`text` as Markdown that Streamlit shows literally, on one line.

    Every ASCII punctuation character is backslash-escaped, shortcodes and arrows are kept
    from being replaced, and white space (line breaks too) collapses to single spaces, so
    no line can start a heading, list, quote or code block.
    """
    text = " ".join(text.split())
    text = _ARROWS.sub(lambda m: m.group(1)[0] + WORD_JOINER + m.group(1)[1:], text)
    text = _SHORTCODE.sub(":" + WORD_JOINER, text)
    return "".join("\\" + ch if ch in _PUNCTUATION else ch for ch in text)


def _escape_piece(text: str) -> str:
    """Like escape_markdown, but keeps a leading or trailing space (pieces of one line)."""
    if not text.strip():
        return " " if text else ""
    lead = " " if text[0].isspace() else ""
    trail = " " if text[-1].isspace() else ""
    return lead + escape_markdown(text) + trail


def _mark(piece: str, style: tuple[str, str]) -> str:
    """A marked piece of a line; white space at its ends stays outside the mark."""
    core = piece.strip()
    if not core:
        return _escape_piece(piece)
    lead = " " if piece[0].isspace() else ""
    trail = " " if piece[-1].isspace() else ""
    return lead + style[0] + escape_markdown(core) + style[1] + trail


def _merge(spans: list[tuple[int, int]] | tuple, text: str) -> list[tuple[int, int]]:
    """Spans clipped to the text, sorted, empty ones dropped, and merged where they overlap or
    only white space on one line parts them (adjacent marked sentences join without a gap)."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted((max(0, s), min(len(text), e)) for s, e in spans):
        if end <= start:
            continue
        if merged and (start <= merged[-1][1] or _inline_space(text[merged[-1][1] : start])):
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _inline_space(gap: str) -> bool:
    return not gap.strip() and "\n" not in gap


def _line_md(
    text: str, start: int, end: int, marks: list[tuple[int, int]], style: tuple[str, str]
) -> str:
    """Markdown of text[start:end] (one line) with the parts inside `marks` marked."""
    out: list[str] = []
    pos = start
    for m_start, m_end in marks:
        m_start, m_end = max(m_start, start), min(m_end, end)
        if m_end <= m_start:
            continue
        out.append(_escape_piece(text[pos:m_start]))
        out.append(_mark(text[m_start:m_end], style))
        pos = m_end
    out.append(_escape_piece(text[pos:end]))
    return "".join(out).strip()


def marked_md(
    text: str, marks: list[tuple[int, int]] | tuple = (), style: tuple[str, str] = HIGHLIGHT
) -> str:
    """Safe Markdown of `text`, its paragraphs and line breaks kept, the `marks` spans marked.

    Args:
        text: question or document text (any characters).
        marks: (start, end) offsets into `text` to mark, e.g. a passage or highlighted words.
        style: `HIGHLIGHT` (sentences that answer) or `PASSAGE` (a passage in its document).

    Returns:
        Markdown in which all of `text` is escaped (see `escape_markdown`).
    """
    spans = _merge(list(marks), text)
    blocks = []
    for p_start, p_end in paragraphs(text):
        lines = []
        pos = p_start
        for line in text[p_start:p_end].split("\n"):
            line_md = _line_md(text, pos, pos + len(line), spans, style)
            if line_md:
                lines.append(line_md)
            pos += len(line) + 1
        blocks.append("  \n".join(lines))  # two spaces: a line break inside the paragraph
    return "\n\n".join(b for b in blocks if b)


# --- relevance -------------------------------------------------------------------------------

# A card's label, its bar and whether its sentences are highlighted all come from ONE number per
# passage, its calibrated probability of answering the question (`Hit.confidence`, see
# `qa.retrieve.answered`): the labels are its bands (`answered.BANDS` above the decision's
# threshold, "weak match" from the threshold up, "hardly related" below it). A passage of an
# answer the documents do not cover is under the threshold, so it is never more than "hardly
# related"; a question lacking key words keeps its numbers under "good match". Only good and
# strong matches have their best sentences marked: a weak match's sentences are shown
# unmarked, so that nothing is marked that does not answer.
WEAK = "weak match"  # from the decision's threshold up: the search takes it for an answer
WEAKEST = "hardly related"


def answers_from() -> float:
    """The number from which a passage counts as answering: the decision's threshold."""
    from qa.retrieve import answered

    return answered.threshold()


@dataclass(frozen=True)
class Relevance:
    """How well a passage matches, for people.

    Attributes:
        label: e.g. "good match".
        fraction: the bar's fill, in [0, 1] (the number the label comes from).
        highlight: whether the passage's best sentences are marked.
    """

    label: str
    fraction: float
    highlight: bool

    @property
    def text(self) -> str:
        """e.g. 'Relevance: strong match'."""
        return f"Relevance: {self.label}"


def strength(hit, answer) -> float:
    """The one number a card's label, bar and highlight come from, in [0, 1]: the passage's
    calibrated probability of answering (`answer` is kept for the decision's context)."""
    return hit.confidence


def relevance(number: float, answered: bool) -> Relevance:
    """Label, bar fill and highlighting for a passage.

    Args:
        number: the passage's number in [0, 1] (see `strength`).
        answered: the answer's decision (`Answer.answered`). When False (its passages' numbers
            are then all under the threshold), nothing is highlighted; when True, a good or
            strong match is highlighted, a weak one is not.
    """
    from qa.retrieve.answered import BANDS

    number = min(1.0, max(0.0, number))
    level = next((name for floor, name in BANDS if number >= floor), None)
    label = level or (WEAK if number >= answers_from() else WEAKEST)
    return Relevance(label, number, answered and level is not None)


# --- passage in context ----------------------------------------------------------------------

CONTEXT_CHARS = 700  # at most this much text before and after a passage, about a paragraph


@dataclass(frozen=True)
class Context:
    """A window of a document around a passage.

    Attributes:
        text: the window, exactly as in the document.
        start, end: the passage's offsets inside `text`.
        cut_before, cut_after: whether the document goes on before / after the window.
    """

    text: str
    start: int
    end: int
    cut_before: bool
    cut_after: bool


def context_window(document: str, start: int, end: int, chars: int = CONTEXT_CHARS) -> Context:
    """The passage document[start:end] with up to `chars` characters of text on each side.

    The window prefers to begin and end at paragraph breaks, else at a space, so it never
    cuts a word in two.
    """
    start = max(0, min(start, len(document)))
    end = max(start, min(end, len(document)))
    lo = max(0, start - chars)
    hi = min(len(document), end + chars)
    if lo > 0:
        breaks = [m.end() for m in re.finditer(r"\n\s*\n", document[lo:start])]
        if breaks:
            lo += breaks[0]
        else:
            space = document.find(" ", lo, start)
            lo = space + 1 if space >= 0 else start
    if hi < len(document):
        breaks = [m.start() for m in re.finditer(r"\n\s*\n", document[end:hi])]
        if breaks:
            hi = end + breaks[-1]
        else:
            space = document.rfind(" ", end, hi)
            hi = space if space >= 0 else end
    while lo < start and document[lo].isspace():
        lo += 1
    while hi > end and document[hi - 1].isspace():
        hi -= 1
    return Context(
        document[lo:hi], start - lo, end - lo, bool(document[:lo].strip()),
        bool(document[hi:].strip()),
    )  # fmt: skip


def context_md(ctx: Context) -> str:
    """Safe Markdown of a context window, the passage marked (`PASSAGE`, not the answer's
    highlight colour), '…' where the document goes on."""
    body = marked_md(ctx.text, [(ctx.start, ctx.end)], PASSAGE)
    return ("… " if ctx.cut_before else "") + body + (" …" if ctx.cut_after else "")


def source_text(manifest: dict, doc: str) -> str | None:
    """The text of an indexed document as it was indexed, or None when it changed or is gone.

    The file is read from the corpus folder the index was built from and accepted only when
    its hash is the one recorded at build time, so the passage offsets still point into it.
    """
    from qa.ingest.loaders import load_file

    record = next((d for d in manifest.get("documents", []) if d.get("path") == doc), None)
    corpus = manifest.get("corpus")
    if record is None or not corpus:
        return None
    root = Path(corpus)
    path = root / doc
    try:
        if not path.resolve().is_relative_to(root.resolve()):
            return None
        document = load_file(root, path)
    except (OSError, ValueError, KeyError):
        return None
    if record.get("sha256") and document.sha256 != record["sha256"]:
        return None
    return document.text


# --- what is indexed ---------------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def indexed_md(manifest: dict, shown: int = 3) -> str:
    """One line on what is indexed, e.g. 'Searching 1 document: *Chronic middle back pain*.'"""
    docs = manifest.get("documents", [])
    titles = [escape_markdown(d.get("title") or d.get("path", "")) for d in docs[:shown]]
    line = f"Searching {_plural(len(docs), 'document')}"
    if titles:
        line += ": " + ", ".join(f"*{t}*" for t in titles)
        if len(docs) > shown:
            line += f" and {_plural(len(docs) - shown, 'other')}"
    return line + "."


def _age(then: datetime, now: datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            return _plural(seconds // size, unit) + " ago"
    return "just now"


def built_when(manifest: dict, now: datetime | None = None) -> str:
    """When the index was built, e.g. '2025-05-01 09:30 UTC (3 hours ago)'."""
    raw = manifest.get("built_at", "")
    try:
        then = datetime.fromisoformat(raw)
    except (TypeError, ValueError):
        return "at an unknown time"
    if then.tzinfo is None:
        then = then.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return f"{then.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC ({_age(then, now)})"


def index_status_md(manifest: dict, now: datetime | None = None, shown: int = 3) -> str:
    """What the index was built from, when, with which model, and the first `shown` files it
    skipped, with the reason (safe Markdown)."""
    docs = manifest.get("documents", [])
    corpus = escape_markdown(str(manifest.get("corpus") or "an unknown folder"))
    model = escape_markdown(str(manifest.get("model", {}).get("id", "an unknown model")))
    lines = [
        f"**Built** {escape_markdown(built_when(manifest, now))}",
        f"**From** {corpus}: {_plural(len(docs), 'document')}, "
        f"{_plural(int(manifest.get('chunks', 0)), 'passage')}",
        f"**Model** {model}",
    ]
    skipped = manifest.get("skipped") or []
    if skipped:
        named = "; ".join(f"{escape_markdown(s['path'])} ({escape_markdown(s['reason'])})"
                          for s in skipped[:shown])  # fmt: skip
        more = f" and {len(skipped) - shown:,} more" if len(skipped) > shown else ""
        lines.append(f"**Skipped** {_plural(len(skipped), 'file')}: {named}{more}")
    return "  \n".join(lines)


def stale_md(summary: str) -> str:
    """The warning for a stale index, from `Staleness.summary()` (safe Markdown)."""
    summary = summary[:1].upper() + summary[1:]
    return (
        f"{escape_markdown(summary)}. Answers come from the documents as they were when "
        "the index was built."
    )


MAX_EXAMPLE_CHARS = 80

# What a section is about, by the word a heading names it with ("Causes of X", "X Treatments"),
# and the question a reader asks about it. A heading that is only that word is about the
# document ("Symptoms" in "Glaucoma": "What are the symptoms of glaucoma?").
ASPECT_QUESTIONS = {
    "cause": "What causes {}?",
    "causes": "What causes {}?",
    "symptoms": "What are the symptoms of {}?",
    "signs": "What are the signs of {}?",
    "diagnosis": "How is {} diagnosed?",
    "treatment": "How is {} treated?",
    "treatments": "How is {} treated?",
    "therapy": "How is {} treated?",
    "prevention": "How can {} be prevented?",
    "advice": "What advice is there for {}?",
    "tips": "What tips are there for {}?",
    "risk factors": "What are the risk factors for {}?",
    "complications": "What are the complications of {}?",
    "outlook": "What is the outlook for {}?",
    "prognosis": "What is the outlook for {}?",
}
ABOUT = "What should I know about {}?"  # any other heading, and a title
GENERIC_HEADINGS = frozenset(
    "introduction overview summary conclusion conclusions background contents references notes "
    "abstract appendix index glossary".split()
)  # fmt: skip
_QUESTION_WORDS = re.compile(
    r"(?i)^(what|how|why|when|where|who|which|can|could|should|is|are|do|does|will|may)\b"
)
_ASPECTS = "|".join(ASPECT_QUESTIONS)
_ASPECT_FIRST = re.compile(rf"(?i)^({_ASPECTS})\s+(?:of|for|in)\s+(.+)$")
_ASPECT_LAST = re.compile(rf"(?i)^(.+?)\s*[:,-]?\s+({_ASPECTS})$")


def _in_sentence(words: str) -> str:
    """A heading's words as they read inside a sentence: a capital that only marks a heading
    ("Chronic Middle Back Pain") is dropped; acronyms (MRI) and names (Crohn's) keep theirs."""
    out = []
    for word in words.split():
        plain = word[:1].isupper() and word[1:].islower() and "'" not in word
        out.append(word.lower() if plain else word)
    return " ".join(out)


def as_question(heading: str, title: str = "") -> str | None:
    """A question a reader would ask about a section, from its heading: "Chronic Middle Back
    Pain Causes" -> "What causes chronic middle back pain?". None for a heading that says
    nothing a reader would ask about ("Introduction").

    Args:
        heading: a section heading (or a document's title).
        title: the document's title, the subject of a heading that names only an aspect.
    """
    heading = " ".join(heading.split()).strip(" .:;")
    if not heading or heading.casefold() in GENERIC_HEADINGS:
        return None
    if heading.endswith("?"):
        return heading
    if _QUESTION_WORDS.match(heading):
        return heading + "?"
    if (aspect := ASPECT_QUESTIONS.get(heading.casefold())) is not None:
        return aspect.format(_in_sentence(title)) if title.strip() else None
    if match := _ASPECT_FIRST.match(heading):
        aspect, subject = match.group(1), match.group(2)
    elif match := _ASPECT_LAST.match(heading):
        subject, aspect = match.group(1), match.group(2)
    else:
        return ABOUT.format(_in_sentence(heading))
    return ASPECT_QUESTIONS[aspect.casefold()].format(_in_sentence(subject))


def example_questions(
    manifest: dict, sections: list[tuple[str, str | None]] = (), count: int = 4
) -> list[str]:
    """Questions a first-time reader can click, taken from the corpus in use: its section
    headings asked as a reader would ask them (`as_question`), a few documents in turn, then
    the documents' titles when there are too few headings.

    Args:
        manifest: the index manifest (documents and their titles, in corpus order).
        sections: (document path, section heading) of passages, in corpus order.
        count: at most this many.
    """
    titles = {d.get("path"): " ".join(str(d.get("title") or "").split())
              for d in manifest.get("documents", [])}  # fmt: skip
    per_doc: dict[str, list[str]] = {}
    for doc, section in sections:
        heading = " ".join((section or "").split())
        title = titles.get(doc, "")
        question = as_question(heading, title) if heading.casefold() != title.casefold() else None
        if (
            question
            and len(question) <= MAX_EXAMPLE_CHARS
            and question not in per_doc.setdefault(doc, [])
        ):
            per_doc[doc].append(question)
    picked: list[str] = []
    queues = [list(questions) for questions in per_doc.values() if questions]
    while queues and len(picked) < count:  # round robin over documents
        for queue in list(queues):
            if len(picked) < count and queue[0].casefold() not in map(str.casefold, picked):
                picked.append(queue[0])
            queue.pop(0)
            if not queue:
                queues.remove(queue)
    for title in titles.values():
        question = as_question(title)
        if len(picked) >= count:
            break
        if question and len(question) <= MAX_EXAMPLE_CHARS and question not in picked:
            picked.append(question)
    return picked


# --- a result card ------------------------------------------------------------------------------


def card_header_md(
    rank: int, section: str | None, doc: str, title: str | None = None, page: int | None = None
) -> str:
    """'**1** · **Title, Section heading, p. 3** · *document path*' as safe Markdown."""
    parts = [f"**{rank}**"]
    citation = cite(title, section, page)
    if citation:
        parts.append(f"**{escape_markdown(citation)}**")
    parts.append(f"*{escape_markdown(doc)}*")
    return " · ".join(parts)


# --- the original file and the document filter -------------------------------------------------

MIME_TYPES = {
    ".pdf": "application/pdf",
    ".html": "text/html",
    ".htm": "text/html",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
}


@dataclass(frozen=True)
class Download:
    """What the page needs to offer a document's original file for download.

    `read` returns the file's bytes; the page calls it only when the button is clicked, so
    showing results never reads (or keeps in memory) the files behind them.
    """

    label: str
    file_name: str
    mime: str
    read: Callable[[], bytes]


def original_download(path: Path | None) -> Download | None:
    """The original file as a download (None when it is gone).

    `path` comes from `Searcher.original_path`, which keeps it inside the corpus folder. A file
    that becomes unreadable before the click downloads as an empty file, never an error.
    """
    if path is None or not path.is_file():
        return None

    def read() -> bytes:
        try:
            return path.read_bytes()
        except OSError:
            return b""

    mime = MIME_TYPES.get(path.suffix.lower(), "application/octet-stream")
    label = f"Download the original ({escape_markdown(path.name)})"  # labels are Markdown
    return Download(label, path.name, mime, read)


def document_choices(documents: list[dict]) -> dict[str, str]:
    """Document path -> label for the document filter ("Title (path, 3 pages)"), in corpus order.

    Labels are shown by the multiselect as plain text, never as Markdown.
    """
    choices = {}
    for d in documents:
        extra = f", {_plural(d['pages'], 'page')}" if d.get("pages") else ""
        choices[d["path"]] = f"{d['title']} ({d['path']}{extra})"
    return choices


def doc_patterns(selected: list[str], choices: dict[str, str]) -> list[str] | None:
    """The `doc` filter for the documents chosen on the page (None: every document).

    A chosen document that is no longer indexed (the index was rebuilt) is ignored.
    """
    return [exact(path) for path in selected if path in choices] or None


QUESTION_SHOWN_CHARS = 300  # a pasted article is not repeated in full above the answers


def results_heading_md(question: str, count: int, answered: bool = True) -> str:
    """'3 passages for: *question*', or over an answer the documents do not cover
    'No answer in the documents for: *question*' (the question escaped, a long one cut)."""
    question = " ".join(question.split())
    if len(question) > QUESTION_SHOWN_CHARS:
        question = question[:QUESTION_SHOWN_CHARS].rstrip() + "…"
    lead = _plural(count, "passage") if answered else "No answer in the documents"
    return f"{lead} for: *{escape_markdown(question)}*"


def answer_key(question: str, mode: str, k: int, docs: list[str] | None) -> str:
    """A short key for one asked question: widget keys built from it (expanders, per-card
    controls) are new for every new question, so their state starts afresh."""
    import hashlib

    raw = "\x00".join([" ".join(question.split()), mode, str(k), *(docs or [])])
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


# --- a shared link -------------------------------------------------------------------------------

K_RANGE = (1, 20)  # the page's passage count: fewest, most
DEFAULT_K = 3


@dataclass(frozen=True)
class LinkChoices:
    """What a shared link (`?k=...&mode=...&docs=...`) asks for, as the page can show it.

    Attributes:
        k: the passage count, clamped to `K_RANGE` (None: the link gives none that is a number).
        mode: the search mode (None: none, or none that exists).
        docs: the documents to search in that are indexed, in link order.
        ignored: what of the link was not used as it stood, in words (safe Markdown).
    """

    k: int | None
    mode: str | None
    docs: list[str]
    ignored: list[str]


def link_choices(params: dict[str, list[str]], modes: list[str], documents: list[str],
                 default_mode: str) -> LinkChoices:  # fmt: skip
    """The passage count, mode and documents a link names, each checked: a count out of range
    is clamped (`k=500` shows the most, `k=0` the fewest), a count that is no whole number, an
    unknown mode and a document that is not indexed are left out, and each is named.

    Args:
        params: the link's values by name, e.g. {"k": ["500"], "mode": ["foo"], "docs": []}.
        modes: the search modes there are.
        documents: the paths of the indexed documents.
        default_mode: the mode used when the link names none that exists.
    """
    ignored: list[str] = []
    low, high = K_RANGE
    k = None
    for raw in params.get("k", [])[:1]:
        shown = escape_markdown(raw)
        try:
            asked = int(raw.strip())
        except ValueError:
            ignored.append(f"k={shown} is no number of passages ({DEFAULT_K} shown)")
            continue
        k = min(high, max(low, asked))
        if k != asked:
            side = f"the most is {high}" if asked > high else f"the fewest is {low}"
            ignored.append(f"k={shown}: {side} ({_plural(k, 'passage')} shown)")
    mode = None
    for raw in params.get("mode", [])[:1]:
        if raw in modes:
            mode = raw
        else:
            ignored.append(f"mode={escape_markdown(raw)} is no search mode "
                           f"({mode_label(default_mode).lower()} used)")  # fmt: skip
    docs = []
    for raw in params.get("docs", []):
        if raw in documents:
            docs.append(raw)
        else:
            ignored.append(f"docs={escape_markdown(raw)} is no indexed document")
    return LinkChoices(k, mode, docs, ignored)


def link_note_md(ignored: list[str]) -> str:
    """One quiet line on what a link asked for that the page could not show as asked."""
    return "From the link: " + "; ".join(ignored) + "." if ignored else ""


# --- messages ------------------------------------------------------------------------------------

_CODE = re.compile(r"`([^`\n]+)`")


def hint_md(text: str) -> str:
    """Safe Markdown of an error message or hint: text escaped, `command` spans shown as code
    (never as literal backticks)."""
    out, pos = [], 0
    for match in _CODE.finditer(text):
        out.append(_escape_piece(text[pos : match.start()]))
        out.append(f"`{match.group(1)}`")  # a code span shows its content literally
        pos = match.end()
    out.append(_escape_piece(text[pos:]))
    return "".join(out).strip()


def added_md(name: str, path: str, passages: int | None, existed: bool = False) -> str:
    """The confirmation for an added document, e.g. 'Added notes.md: 7 passages.'"""
    shown = escape_markdown(name)
    if existed:
        return f"{shown} is already in the documents ({_plural(passages or 0, 'passage')})."
    where = f" as {escape_markdown(path)}" if path != name else ""
    if passages is None:
        return f"Saved {shown}{where}; it is not in the index yet (rebuild the index)."
    return f"Added {shown}{where}: {_plural(passages, 'passage')}."


def document_row_md(row) -> str:
    """A document in the documents panel: title, then path, passages and date (safe Markdown).

    `row`: a `qa.present.documents.Row`.
    """
    facts = [escape_markdown(row.path), _plural(row.passages, "passage")]
    if row.modified:
        facts.append(escape_markdown(row.modified))
    return f"**{escape_markdown(row.title)}**  \n" + " · ".join(facts)


def confirm_remove_md(path: str) -> str:
    """The question asked before a document is removed."""
    return (
        f"Remove {escape_markdown(path)}? The file is deleted from the documents folder and "
        "its passages from the index."
    )


def removed_md(path: str) -> str:
    """The confirmation for a removed document."""
    return f"Removed {escape_markdown(path)} from the documents and the index."


# --- the passage in its document -----------------------------------------------------------------

DOCUMENT_CHARS = 20_000  # the document view shows at most this much text on each side


def passage_url(doc: str, start: int, end: int) -> str:
    """The page's link to a passage in its document (relative: works under any base path)."""
    from urllib.parse import urlencode

    return "?" + urlencode({"doc": doc, "start": start, "end": end}) + "#passage"


@dataclass(frozen=True)
class PassageRequest:
    """A passage asked for by a link (`passage_url`): document path and offsets."""

    doc: str
    start: int
    end: int


def passage_request(params, documents: list[str]) -> PassageRequest | None:
    """The passage a page link asks for, when its parameters name an indexed document and
    offsets that make sense; None otherwise (the page then says the link is broken)."""
    doc = params.get("doc")
    try:
        start, end = int(params.get("start", "")), int(params.get("end", ""))
    except (TypeError, ValueError):
        return None
    if doc not in documents or not 0 <= start < end:
        return None
    return PassageRequest(doc, start, end)


def document_parts(text: str, start: int, end: int) -> tuple[str, str, str]:
    """Safe Markdown of a document around a passage: (text before, the passage marked, text
    after), at most `DOCUMENT_CHARS` on each side, '…' where the document goes on."""
    ctx = context_window(text, start, end, DOCUMENT_CHARS)
    before = ("… " if ctx.cut_before else "") + marked_md(ctx.text[: ctx.start])
    passage = marked_md(ctx.text[ctx.start : ctx.end], [(0, ctx.end - ctx.start)], PASSAGE)
    after = marked_md(ctx.text[ctx.end :]) + (" …" if ctx.cut_after else "")
    return before.strip(), passage, after.strip()


def copy_text(text: str, title: str, section: str | None, doc: str, page: int | None) -> str:
    """A passage as a reader would paste it: the text, then its citation."""
    citation = cite(title, section, page) or title
    return f"{' '.join(text.split())}\n\n({citation}; {doc})"
