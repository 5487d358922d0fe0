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

REPORT_DOC = "chronic-middle-back-pain.txt"  # the report that ships in corpus/

REPORT_EXAMPLES = (
    "What causes chronic mid back pain?",
    "Could my back pain be psychosomatic?",
    "Should I see a chiropractor?",
    "Is the thoracic spine often injured?",
)

DISCLAIMER = (
    "This page finds passages in the documents; it does not give medical advice. "
    "Ask a doctor about your own health."
)
EMPTY_HINT = "Type a question and press Enter, or click one of the examples."
NOT_COVERED = "The documents do not seem to cover this question."
NO_PASSAGES = "No passage matches. Try other words, or another search mode."

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

MARK_OPEN, MARK_CLOSE = ":orange-background[", "]"  # how marked text is shown


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


def _mark(piece: str) -> str:
    """A marked piece of a line; white space at its ends stays outside the mark."""
    core = piece.strip()
    if not core:
        return _escape_piece(piece)
    lead = " " if piece[0].isspace() else ""
    trail = " " if piece[-1].isspace() else ""
    return lead + MARK_OPEN + escape_markdown(core) + MARK_CLOSE + trail


def _merge(spans: list[tuple[int, int]] | tuple, length: int) -> list[tuple[int, int]]:
    """Spans clipped to [0, length], sorted, overlapping ones merged, empty ones dropped."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted((max(0, s), min(length, e)) for s, e in spans):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _line_md(text: str, start: int, end: int, marks: list[tuple[int, int]]) -> str:
    """Markdown of text[start:end] (one line) with the parts inside `marks` marked."""
    out: list[str] = []
    pos = start
    for m_start, m_end in marks:
        m_start, m_end = max(m_start, start), min(m_end, end)
        if m_end <= m_start:
            continue
        out.append(_escape_piece(text[pos:m_start]))
        out.append(_mark(text[m_start:m_end]))
        pos = m_end
    out.append(_escape_piece(text[pos:end]))
    return "".join(out).strip()


def marked_md(text: str, marks: list[tuple[int, int]] | tuple = ()) -> str:
    """Safe Markdown of `text`, its paragraphs and line breaks kept, the `marks` spans marked.

    Args:
        text: question or document text (any characters).
        marks: (start, end) offsets into `text` to mark, e.g. a passage or highlighted words.

    Returns:
        Markdown in which all of `text` is escaped (see `escape_markdown`).
    """
    spans = _merge(list(marks), len(text))
    blocks = []
    for p_start, p_end in paragraphs(text):
        lines = []
        pos = p_start
        for line in text[p_start:p_end].split("\n"):
            line_md = _line_md(text, pos, pos + len(line), spans)
            if line_md:
                lines.append(line_md)
            pos += len(line) + 1
        blocks.append("  \n".join(lines))  # two spaces: a line break inside the paragraph
    return "\n\n".join(b for b in blocks if b)


# --- relevance -------------------------------------------------------------------------------

# Dense and hybrid scores are on the cosine scale (hybrid adds a lexical bonus of at most 0.2).
# Under all-MiniLM-L6-v2, on the shipped report (tests/data/report_questions.jsonl), answering
# passages score about 0.4-0.85 in cosine and off-topic questions below 0.05; these cut points
# turn that into words a reader understands.
RELEVANCE_LEVELS = ((0.6, "strong match"), (0.4, "good match"), (0.2, "weak match"))
WEAKEST = "hardly related"
FULL_BAR_SCORE = 0.8


@dataclass(frozen=True)
class Relevance:
    """How well a passage matches, for people: a label, a bar fill in [0, 1], and the score."""

    label: str
    fraction: float
    score: float
    keyword: bool = False  # a BM25 score (no fixed scale) rather than a cosine-scaled one

    @property
    def text(self) -> str:
        """e.g. 'Relevance: strong match (0.85)', or for BM25
        'Relevance: 60% of the best keyword score (BM25 4.2)'."""
        if self.keyword:
            return f"Relevance: {self.label} (BM25 {self.score:.1f})"
        return f"Relevance: {self.label} ({self.score:.2f})"


def relevance(score: float, mode: str = "dense", best: float | None = None) -> Relevance:
    """Label and bar fill for a passage's score.

    Args:
        score: the hit's score (higher is better).
        mode: the retrieval mode that scored it. "lexical" scores are BM25, which has no fixed
            scale, so they are shown relative to `best`; other modes are on the cosine scale.
        best: the best score of the answer (the first hit's), for "lexical".
    """
    if mode == "lexical":
        fraction = min(1.0, max(0.0, score / best)) if best and best > 0 else 0.0
        return Relevance(
            f"{round(fraction * 100)}% of the best keyword score", fraction, score, True
        )
    label = next((name for floor, name in RELEVANCE_LEVELS if score >= floor), WEAKEST)
    fraction = min(1.0, max(0.0, score / FULL_BAR_SCORE))
    return Relevance(label, fraction, score)


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
    return Context(document[lo:hi], start - lo, end - lo, lo > 0, hi < len(document))


def context_md(ctx: Context) -> str:
    """Safe Markdown of a context window, the passage marked, '…' where the document goes on."""
    body = marked_md(ctx.text, [(ctx.start, ctx.end)])
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


def index_status_md(manifest: dict, now: datetime | None = None) -> str:
    """What the index was built from, when, and with which model (safe Markdown)."""
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
        lines.append(f"**Skipped** {_plural(len(skipped), 'file')} it cannot read")
    return "  \n".join(lines)


def stale_md(summary: str) -> str:
    """The warning for a stale index, from `Staleness.summary()` (safe Markdown)."""
    summary = summary[:1].upper() + summary[1:]
    return (
        f"{escape_markdown(summary)}. Answers come from the documents as they were when "
        "the index was built."
    )


def example_questions(manifest: dict, count: int = 4) -> list[str]:
    """Questions a first-time reader can click: about the report when it is indexed, else
    built from the titles of the first documents."""
    docs = manifest.get("documents", [])
    if any(d.get("path", "").endswith(REPORT_DOC) for d in docs):
        return list(REPORT_EXAMPLES[:count])
    questions = []
    for d in docs[:count]:
        title = " ".join(str(d.get("title") or "").split())
        if title:
            questions.append(f"What is {title[:1].lower() + title[1:]}?")
    return questions


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


def results_heading_md(question: str, count: int) -> str:
    """'3 passages for: *question*' (the question escaped, a long one cut with '…')."""
    question = " ".join(question.split())
    if len(question) > QUESTION_SHOWN_CHARS:
        question = question[:QUESTION_SHOWN_CHARS].rstrip() + "…"
    return f"{_plural(count, 'passage')} for: *{escape_markdown(question)}*"
