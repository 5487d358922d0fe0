"""Damaged inputs, one test each (issue #16): every one ends in a one-line error with a hint, or
a correct answer; never a traceback, never invalid output, nothing lost.

Indexes are damaged *past* their checksums where it matters (`conftest.reseal` recomputes them,
as someone editing an index on purpose would), so the checks behind the checksums are tested.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPORT, reseal, write_generation

from qa import cli, staleness
from qa.build import build_index
from qa.cli import json_text, main
from qa.errors import NOTE, IndexCorruptError, QAError
from qa.ingest.chunking import CHUNKER_VERSION
from qa.retrieve.searcher import MAX_QUESTION_CHARS, Searcher
from qa.store import folder as store
from qa.store.local import LocalStore

CONTROL = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0), 0x202E, 0x2066)]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, message: str = "") -> None:
    assert err.startswith("qa: error: "), err
    assert message in err, err
    assert "(hint: " in err and err.count("\n") == 1, err
    assert "Traceback" not in err


def tree(folder: Path) -> dict[str, bytes]:
    """Every file and link under a folder: what a failed command must leave as it was."""
    out = {}
    for path in sorted(Path(folder).rglob("*")):
        rel = path.relative_to(folder).as_posix()
        out[rel] = os.readlink(path).encode() if path.is_symlink() else (
            path.read_bytes() if path.is_file() else b"<dir>")
    return out


@pytest.fixture
def copy_index(report_index, tmp_path):
    target = tmp_path / "index"
    shutil.copytree(report_index, target, symlinks=True)
    return target


def live(index: Path) -> Path:
    return store.current_build(index)


def manifest_of(index: Path) -> dict:
    return json.loads((live(index) / "manifest.json").read_text())


# ---------------------------------------------------------------- 1. no text to index


@pytest.mark.parametrize("content", [b"", b"   \n\n \t\n", "\u00a0\n".encode()])
def test_corpus_without_text_is_refused_and_the_old_index_kept(capsys, copy_index, tmp_path,
                                                               content):
    corpus = tmp_path / "blank"
    corpus.mkdir()
    (corpus / "only.txt").write_bytes(content)
    before = tree(copy_index)
    code, out, err = run(capsys, "build", "--corpus", str(corpus), "--index", str(copy_index))
    assert code == 1 and out == ""
    assert_one_line_error(err, "no text to index")
    assert tree(copy_index) == before  # the old index, untouched, still live
    code, out, _ = run(capsys, "ask", "chiropractor", "--index", str(copy_index), "-k", "1")
    assert code == 0 and out.startswith("1. [")


def test_an_empty_index_however_made_answers_with_a_clear_message(capsys, tmp_path, embedder):
    manifest = {"model": {"id": embedder.model_id, "dim": embedder.dim},
                "chunking": {"version": CHUNKER_VERSION, "max_tokens": 254, "overlap": 1},
                "documents": [], "chunks": 0}  # fmt: skip
    write_generation(tmp_path, manifest, [], np.zeros((0, embedder.dim), np.float32))
    code, out, err = run(capsys, "ask", "back pain", "--index", str(tmp_path), "--json")
    assert code == 1 and out == ""
    assert_one_line_error(err, "holds no passages")
    with pytest.raises(QAError, match="holds no passages"):
        Searcher(tmp_path, embedder=embedder).ask("back pain")


# ---------------------------------------------------------------- 2. dangling symbolic link


def test_dangling_symlink_is_skipped_once_and_never_stale(capsys, tmp_path, embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / "report.txt")
    (corpus / "gone.txt").symlink_to("nowhere.txt")
    (corpus / "loop.md").symlink_to("loop.md")  # a link to itself: no file either
    build_index(corpus, tmp_path / "i", embedder=embedder)
    skipped = {s["path"]: s["reason"] for s in manifest_of(tmp_path / "i")["skipped"]}
    assert skipped == {"gone.txt": "broken symbolic link", "loop.md": "symbolic link loop"}
    result = staleness.check(tmp_path / "i", corpus)
    assert result.stale is False and result.added == []
    code, _, err = run(capsys, "ask", "back pain", "--index", str(tmp_path / "i"), "-k", "1")
    assert code == 0 and err == ""  # no warning on every question
    build_index(corpus, tmp_path / "i", embedder=embedder)
    assert staleness.check(tmp_path / "i", corpus).stale is False
    (corpus / "nowhere.txt").write_text("Now the link leads to a file.\n")
    assert staleness.check(tmp_path / "i", corpus).added == ["gone.txt", "nowhere.txt"]  # mended


def test_named_pipe_in_the_corpus_is_skipped_not_read(capsys, tmp_path, monkeypatch, embedder):
    """Reading a FIFO blocks until someone writes to it: a build must never open one."""
    monkeypatch.setattr("qa.build.Embedder", lambda model=None, **_: embedder)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / "report.txt")
    os.mkfifo(corpus / "pipe.txt")
    code, out, err = run(capsys, "build", "--corpus", str(corpus), "--index", str(tmp_path / "i"))
    assert code == 0 and err == "qa: warning: skipped pipe.txt: not a regular file\n"
    assert staleness.check(tmp_path / "i", corpus).stale is False


# ---------------------------------------------------------------- 3. the manifest, whole


MANIFEST_DAMAGE = {
    "chunking empty": lambda m: m.update(chunking={}),
    "corpus a number": lambda m: m.update(corpus=12),
    "skipped a string": lambda m: m.update(skipped="x"),
    "documents not a list": lambda m: m.update(documents={"path": "a"}),
    "a document without path": lambda m: m["documents"][0].pop("path"),
    "chunks a bool": lambda m: m.update(chunks=True),
    "dim zero": lambda m: m["model"].update(dim=0),
    "chunks do not add up": lambda m: m.update(chunks=m["chunks"] + 1),
    "unknown key": lambda m: m.update(surprise=1),
    "a NaN": lambda m: m["lexical"].update(k1=float("nan")),
    "file name with a slash": lambda m: m["files"].update({"../x": "0" * 64}),
    "model id nested deep": lambda m: m["model"].update(id=[[[[["x"]]]]]),
}


@pytest.mark.parametrize("sealed", [True, False], ids=["checksum fixed", "checksum stale"])
@pytest.mark.parametrize("damage", sorted(MANIFEST_DAMAGE))
def test_damaged_manifest_is_one_line_error_in_ask_and_info(capsys, copy_index, damage, sealed):
    manifest = manifest_of(copy_index)
    MANIFEST_DAMAGE[damage](manifest)
    if sealed:
        reseal(live(copy_index), manifest, files=False)
    else:
        (live(copy_index) / "manifest.json").write_text(json.dumps(manifest))
    for argv in (["ask", "back pain", "--json"], ["info"], ["info", "--json"]):
        code, out, err = run(capsys, *argv, "--index", str(copy_index))
        assert code == 1 and out == "", (argv, err)
        assert_one_line_error(err, "manifest")


def test_deeply_nested_manifest(capsys, copy_index):
    (live(copy_index) / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    for argv in (["ask", "back pain"], ["info"]):
        code, _, err = run(capsys, *argv, "--index", str(copy_index))
        assert code == 1
        assert_one_line_error(err, "manifest")


def test_hand_edited_manifest_fails_its_checksum(capsys, copy_index):
    manifest = manifest_of(copy_index)
    manifest["documents"][0]["title"] = "Edited by hand"  # valid, but not what was built
    (live(copy_index) / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = run(capsys, "info", "--index", str(copy_index))
    assert code == 1
    assert_one_line_error(err, "manifest at")
    assert "damaged (checksum mismatch)" in err


def test_manifest_of_an_older_format_asks_for_a_rebuild(capsys, copy_index):
    manifest = manifest_of(copy_index)
    manifest["format"] = 1
    del manifest["checksum"]
    (live(copy_index) / "manifest.json").write_text(json.dumps(manifest))
    code, _, err = run(capsys, "info", "--index", str(copy_index))
    assert code == 1
    assert_one_line_error(err, "written by an older qa (format 1; this qa reads format 2)")


# ---------------------------------------------------------------- 4. arrays: dtype, shape, range


def rewrite_array(build: Path, name: str, array: np.ndarray | None = None,
                  header: dict | None = None) -> None:  # fmt: skip
    """Replace an array file (or only its header), and fix the checksums."""
    path = build / f"{name}.npy"
    original = np.load(path, allow_pickle=False)
    if header is None:
        np.save(path, original if array is None else array, allow_pickle=False)
    else:
        with open(path, "wb") as fh:
            fields = {"descr": np.lib.format.dtype_to_descr(original.dtype),
                      "fortran_order": False, "shape": original.shape, **header}  # fmt: skip
            np.lib.format.write_array_header_1_0(fh, fields)
            fh.write(np.ascontiguousarray(original).tobytes())
    reseal(build)


def damage_sentences_shape(build):
    table = np.load(build / "sentences.npy")
    rewrite_array(build, "sentences", table[:, :2].copy())


def damage_sentences_range(build):
    table = np.load(build / "sentences.npy")
    table[0, 0] = 10_000
    rewrite_array(build, "sentences", table)


def damage_sentence_offsets(build):
    table = np.load(build / "sentences.npy")
    table[0, 2] = 1_000_000
    rewrite_array(build, "sentences", table)


def damage_sentence_vectors(build):
    rewrite_array(build, "sentence_vectors", np.load(build / "sentence_vectors.npy")[:-1])


def damage_bm25_range(build):
    indices = np.load(build / "bm25_indices.npy")
    indices[3] = 999
    rewrite_array(build, "bm25_indices", indices)


def damage_bm25_negative(build):
    indices = np.load(build / "bm25_indices.npy")
    indices[0] = -1
    rewrite_array(build, "bm25_indices", indices)


def damage_bm25_shape(build):
    rewrite_array(build, "bm25_data", np.load(build / "bm25_data.npy")[:-2])


def damage_bm25_indptr(build):
    indptr = np.load(build / "bm25_indptr.npy")
    indptr[1], indptr[2] = indptr[2], indptr[1] - 1
    rewrite_array(build, "bm25_indptr", indptr)


def damage_bm25_dtype(build):
    rewrite_array(build, "bm25_indices", np.load(build / "bm25_indices.npy").astype(np.float64))


def damage_vectors_dtype(build):
    rewrite_array(build, "vectors", np.load(build / "vectors.npy").astype(np.float16))


def damage_lying_header(build):  # 1e11 rows claimed: must not try to allocate them
    rewrite_array(build, "vectors", header={"shape": (100_000_000_000, 384)})


def damage_lying_header_sentences(build):
    rewrite_array(build, "sentence_vectors", header={"shape": (100_000_000_000, 384)})


def damage_unknown_array(build):
    np.save(build / "extra.npy", np.zeros(3))
    manifest = json.loads((build / "manifest.json").read_text())
    manifest["arrays"].append("extra")
    manifest["files"]["extra.npy"] = ""
    reseal(build, manifest)


ARRAY_DAMAGE = {f.__name__.removeprefix("damage_"): f for f in (
    damage_sentences_shape, damage_sentences_range, damage_sentence_offsets,
    damage_sentence_vectors, damage_bm25_range, damage_bm25_negative, damage_bm25_shape,
    damage_bm25_indptr, damage_bm25_dtype, damage_vectors_dtype, damage_lying_header,
    damage_lying_header_sentences, damage_unknown_array,
)}  # fmt: skip


@pytest.mark.parametrize("damage", sorted(ARRAY_DAMAGE))
def test_array_of_wrong_shape_type_or_range_is_an_error(capsys, copy_index, damage):
    ARRAY_DAMAGE[damage](live(copy_index))
    before = tree(copy_index)
    code, out, err = run(capsys, "ask", "chiropractor", "--index", str(copy_index), "--json")
    assert code == 1 and out == "", err
    where = "index manifest" if damage == "unknown_array" else f"index at {live(copy_index)}"
    assert_one_line_error(err, where)
    assert "qa build" in err and "MemoryError" not in err
    assert tree(copy_index) == before
    code, _, err = run(capsys, "info", "--verify", "--index", str(copy_index))
    assert code == 1
    assert_one_line_error(err, "inconsistent" if damage[0] in "bsv" else "")


def test_arrays_are_memory_mapped_after_their_checksums(copy_index, monkeypatch):
    loads = []
    real = np.load

    def spy(path, *args, **kwargs):
        loads.append((Path(path).name, kwargs.get("mmap_mode")))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    LocalStore(copy_index).open()
    assert loads and all(mode == "r" for _, mode in loads), loads
    assert {"vectors.npy", "sentences.npy", "bm25_indices.npy"} <= {name for name, _ in loads}


# ---------------------------------------------------------------- 5. NaN never reaches JSON


@pytest.mark.parametrize("name", ["vectors", "sentence_vectors", "bm25_data"])
def test_non_finite_values_in_the_index_are_an_error(capsys, copy_index, name):
    array = np.load(live(copy_index) / f"{name}.npy")
    array[0] = np.nan if name != "bm25_data" else np.inf
    rewrite_array(live(copy_index), name, array)
    code, out, err = run(capsys, "ask", "chiropractor", "--index", str(copy_index), "--json")
    assert code == 1 and out == ""
    assert_one_line_error(err, "not finite numbers")


def test_a_score_that_is_not_a_number_is_an_error_never_json(capsys, report_index, monkeypatch):
    """Whatever gives it (a model that returns NaN, a ranking bug), a score or question vector
    that is not a number stops the answer: it never reaches the JSON."""
    import qa.retrieve.searcher
    from qa.embed.embedder import Embedder

    real_rank, real_encode = qa.retrieve.searcher.rank, Embedder.encode_question

    def nan_scores(*args, **kwargs):
        ranking = real_rank(*args, **kwargs)
        ranking.scores = np.full_like(ranking.scores, np.nan)
        return ranking

    def nan_vector(self, text):
        parts, weights, tokens = real_encode(self, text)
        return [np.full_like(p, np.nan) for p in parts], weights, tokens

    for target, broken in (("qa.retrieve.searcher.rank", nan_scores),
                           (Embedder, nan_vector)):  # fmt: skip
        with monkeypatch.context() as patch:
            if isinstance(target, str):
                patch.setattr(target, broken)
            else:
                patch.setattr(target, "encode_question", broken)
            code, out, err = run(capsys, "ask", "chiropractor", "--index", str(report_index),
                                 "--json")
        assert code == 1 and out == ""
        assert_one_line_error(err, "scores that are not numbers")


def test_json_output_is_always_valid_and_terminal_safe():
    with pytest.raises(ValueError):
        json_text({"score": float("nan")})
    text = json_text({"t": "a\x1b[2J\x9b31m\u202eb\x07"})
    assert json.loads(text) == {"t": "a\x1b[2J\x9b31m\u202eb\x07"}  # the same value...
    assert not any(c in text for c in CONTROL)  # ...with every control character escaped


# ---------------------------------------------------------------- 6. a failed build leaves nothing


def test_failed_first_build_leaves_no_index_folder(capsys, tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "a.txt").write_text("  \n")
    for corpus in ("corpus", "blank"):
        code, _, err = run(capsys, "build", "--corpus", str(tmp_path / corpus), "--index",
                           str(tmp_path / "index"))
        assert code == 1, err
        assert not os.path.lexists(tmp_path / "index"), corpus
    (tmp_path / "mine").mkdir()  # a folder the user made: kept, left empty
    code, _, _ = run(capsys, "build", "--corpus", str(tmp_path / "corpus"), "--index",
                     str(tmp_path / "mine"))
    assert code == 1 and list((tmp_path / "mine").iterdir()) == []


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_build_stopped_by_a_signal_leaves_nothing(tmp_path, sig, status):
    """Ctrl-C or SIGTERM while embedding into a new index folder: no folder left behind."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(600):  # enough that the build is still embedding when the signal lands
        (corpus / f"note-{i:03d}.txt").write_text(f"Note {i} says rest helps the back.\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "qa", "--debug", "build", "-q", "--corpus", str(corpus),
         "--index", str(tmp_path / "new")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        preexec_fn=listening_to_signals,  # the suite may run as a background job
    )
    for line in proc.stderr:
        if line.startswith("qa: debug: embedding"):
            proc.send_signal(sig)
            break
    rest = proc.stderr.read()
    proc.wait(timeout=120)
    assert proc.returncode == status, rest[-2000:]
    assert rest.endswith("qa: terminated\n" if sig == signal.SIGTERM else "qa: interrupted\n")
    assert not os.path.lexists(tmp_path / "new")


@pytest.mark.parametrize("sig, said", [(signal.SIGINT, "qa: interrupted"),
                                        (signal.SIGTERM, "qa: terminated")])
@pytest.mark.parametrize("debug", [False, True])
def test_a_signal_swallowed_by_an_extension_import_still_reads_as_stopped(
        capsys, monkeypatch, sig, said, debug):
    """Ctrl-C landing while onnxruntime's C extension initialises surfaces as
    `ImportError: initialization failed` (seen in CI); the user must read that qa was
    stopped, with the signal's status, not an unexpected error or a traceback."""
    def command(args):
        try:
            os.kill(os.getpid(), sig)
        except BaseException:  # what the extension's init does with the interrupt
            raise ImportError("initialization failed") from None
        return 0

    monkeypatch.setitem(cli.COMMANDS, "info", command)
    with dispositions({signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}):
        code, out, err = run(capsys, *(["--debug"] if debug else []), "info")
        assert (code, out, err) == (128 + sig, "", said + "\n")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_the_process_was_started_ignoring_stays_ignored(capsys, monkeypatch, sig):
    """A shell starts background jobs (`qa build &` in a script) with SIGINT ignored, so that
    Ctrl-C meant for the foreground job does not stop them: qa must not take it over."""
    def command(args):
        os.kill(os.getpid(), sig)
        return 0

    monkeypatch.setitem(cli.COMMANDS, "info", command)
    with dispositions({sig: signal.SIG_IGN}):
        assert run(capsys, "info") == (0, "", "")
        assert signal.getsignal(sig) is signal.SIG_IGN


@contextlib.contextmanager
def dispositions(handlers: dict):
    """These signal handlers for the block, whatever the test run inherited; restored after."""
    before = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def listening_to_signals() -> None:
    """In a child before exec: SIGINT and SIGTERM back to their defaults, whatever the test run
    inherited (a background job starts with SIGINT ignored, and qa keeps an ignored signal
    ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_failed_build_over_a_live_index_changes_nothing(capsys, copy_index, tmp_path):
    (tmp_path / "empty").mkdir()
    before = tree(copy_index)
    code, _, _ = run(capsys, "build", "--corpus", str(tmp_path / "empty"), "--index",
                     str(copy_index))
    assert code == 1 and tree(copy_index) == before


# ---------------------------------------------------------------- 7. size limit, estimate, bar


def test_files_over_the_size_limit_are_skipped_by_name(capsys, tmp_path, monkeypatch, embedder):
    monkeypatch.setattr("qa.build.Embedder", lambda model=None, **_: embedder)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / "report.txt")
    (corpus / "huge.txt").write_text("word " * 400_000)  # 2 MB on one line
    code, out, err = run(capsys, "build", "--corpus", str(corpus), "--index", str(tmp_path / "i"),
                         "--max-file-mb", "1.5")
    assert code == 0, err
    assert err == ("qa: warning: skipped huge.txt: 2.0 MB, over the limit of 1.5 MB per file "
                   "set by --max-file-mb or QA_MAX_FILE_MB\n")
    assert out.startswith("Indexed 1 document, 12 chunks")
    monkeypatch.setenv("QA_MAX_FILE_MB", "1")
    code, _, err = run(capsys, "build", "--corpus", str(corpus), "--index", str(tmp_path / "i"))
    assert code == 0 and "over the limit of 1.0 MB" in err
    for bad in ("-1", "lots"):
        monkeypatch.setenv("QA_MAX_FILE_MB", bad)
        code, _, err = run(capsys, "build", "--corpus", str(corpus), "--index",
                           str(tmp_path / "i"))
        assert code == 2
        assert_one_line_error(err, "megabytes")


def test_long_build_says_how_long_before_it_embeds(tmp_path, embedder, monkeypatch, caplog):
    import qa.build

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    paragraphs = [f"Paragraph {i} says that rest and movement help the back." for i in range(60)]
    (corpus / "many.txt").write_text("\n\n".join(paragraphs))
    monkeypatch.setattr(qa.build, "LONG_BUILD_S", 0)  # every build is long
    with caplog.at_level(NOTE, logger="qa.build"):
        build_index(corpus, tmp_path / "i", embedder=embedder)
    notes = [r.getMessage() for r in caplog.records if r.levelno == NOTE]
    assert len(notes) == 1, notes
    assert notes[0].startswith("embedding 60 passages; about ")
    assert "passages/s measured (Ctrl-C stops it, and the current index stays)" in notes[0]
    # the estimate came after the first small window, before most of the embedding
    assert qa.build.FIRST_WINDOW_BATCHES * embedder.batch_size < 60


def test_progress_bar_fits_every_terminal_width():
    from tqdm import tqdm

    from qa.build import Meter

    for width in (12, 30, 50, 80, 200):
        line = tqdm.format_meter(500, 41_234, 20.0, ncols=width, bar_format=Meter.BAR)
        assert len(line) <= width and line.startswith("Embedding"[:width]), (width, line)
        if width >= 30:  # what matters comes first: share done and time left
            assert line.startswith("Embedding   1%, 27:09 left"), line
    meter = Meter(10, progress=True, on_progress=None)
    try:
        assert meter.bar.dynamic_ncols  # follows the terminal as it is resized
    finally:
        meter.close()


def test_notes_are_printed_as_notes(capsys):
    """As the CLI sets logging up in a fresh process: notes shown, control characters not."""
    from qa.terminal import configure_logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers = []
    try:
        configure_logging(debug=False)
        logging.getLogger("qa.build").log(NOTE, "about %s left \x1b]0;x\x07", "2 minutes")
        logging.getLogger("qa.build").info("not shown")
    finally:
        root.handlers, root.level = handlers, level
    assert capsys.readouterr().err == "qa: note: about 2 minutes left  ]0;x \n"


# ---------------------------------------------------------------- 8. control characters


EVIL = "evil\x1b[2J\x1b]0;PWNED\x07"


def test_names_and_titles_never_reach_the_terminal_raw(capsys, tmp_path, monkeypatch, embedder):
    monkeypatch.setattr("qa.build.Embedder", lambda model=None, **_: embedder)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / f"{EVIL}.txt")
    (corpus / "notes.md").write_text(f"---\ntitle: {EVIL} title\n---\n# {EVIL} heading\n\n"
                                     "Stretching helps a stiff back.\n")  # fmt: skip
    (corpus / f"{EVIL}.docx").write_bytes(b"PK")
    (corpus / "\u202eevil.txt").write_bytes(b"\x00binary")
    outputs = [run(capsys, "build", "--corpus", str(corpus), "--index", str(tmp_path / "i"))]
    outputs.append(run(capsys, "info", "--index", str(tmp_path / "i")))
    outputs.append(run(capsys, "info", "--index", str(tmp_path / "i"), "--json"))
    outputs.append(run(capsys, "ask", "stretching", "--index", str(tmp_path / "i")))
    for code, out, err in outputs:
        assert code == 0, err
        printed = out.replace("\n", "") + err.replace("\n", "")
        assert not any(c in printed for c in CONTROL), repr(printed)
    assert "evil [2J ]0;PWNED .txt" in outputs[1][1]  # named, harmlessly
    assert json.loads(outputs[2][1])["files"][0]["path"] == f"{EVIL}.txt"  # JSON: exact
    code, out, err = run(capsys, "info", "--index", str(tmp_path / "i"), "--corpus",
                         str(tmp_path))  # stale: every name listed as added, harmlessly
    assert code == 0 and "stale:      yes" in out
    assert not any(c in (out + err).replace("\n", "") for c in CONTROL)


def test_error_messages_never_carry_control_characters(capsys, tmp_path):
    code, _, err = run(capsys, "build", "--corpus", str(tmp_path / EVIL), "--index",
                       str(tmp_path / "i"))
    assert code == 1
    assert_one_line_error(err, "no corpus folder at")
    assert not any(c in err[:-1] for c in CONTROL)


# ---------------------------------------------------------------- 9. question length


def test_a_huge_question_is_cut_first_and_said_once(capsys, monkeypatch, report_index, embedder):
    import qa.retrieve.ranking

    seen = []
    real_truncate, real_tokenize = embedder.truncate, qa.retrieve.ranking.tokenize
    monkeypatch.setattr(embedder, "truncate", lambda text, *a: seen.append(len(text))
                        or real_truncate(text, *a))  # fmt: skip
    monkeypatch.setattr(qa.retrieve.ranking, "tokenize", lambda text: seen.append(len(text))
                        or real_tokenize(text))  # fmt: skip
    question = "Why does my back hurt? " * 500_000  # 11.5 MB
    answer = Searcher(report_index, embedder=embedder).ask(question, k=2)
    assert answer.truncated and len(answer.hits) == 2
    assert seen and max(seen) <= MAX_QUESTION_CHARS
    monkeypatch.setattr(sys, "stdin", io.StringIO(question + "\nchiropractor\n"))
    code, out, err = run(capsys, "ask", "--index", str(report_index), "-k", "1", "--json")
    assert code == 0
    assert err == (f"qa: note: the question was cut to its first {MAX_QUESTION_CHARS} characters, "
                   "then to the model's window (its first 254 word pieces)\n")
    first, second = (json.loads(line) for line in out.splitlines())
    assert len(first["question"]) == MAX_QUESTION_CHARS and second["question"] == "chiropractor"


def test_question_over_the_character_limit_but_inside_the_window(capsys, report_index):
    question = "x" * (MAX_QUESTION_CHARS + 10)  # few word pieces: only the first cut applies
    code, _, err = run(capsys, "ask", question, "--index", str(report_index), "-k", "1")
    assert code == 0
    assert err == f"qa: note: the question was cut to its first {MAX_QUESTION_CHARS} characters\n"


# ---------------------------------------------------------------- 10. no question at all


@pytest.mark.parametrize("stdin", ["", "\n  \n\t\n"])
def test_no_question_on_standard_input_is_a_usage_error(capsys, monkeypatch, report_index, stdin):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code, out, err = run(capsys, "ask", "--index", str(report_index))
    assert code == 2 and out == ""
    assert_one_line_error(err, "no question given")


def test_ask_from_dev_null_in_a_real_process(report_index):
    proc = subprocess.run([sys.executable, "-m", "qa", "ask", "--index", str(report_index)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert_one_line_error(proc.stderr, "no question given")


# ---------------------------------------------------------------- qa info --verify


def test_info_says_it_does_not_verify_and_verify_does(capsys, copy_index):
    code, out, _ = run(capsys, "info", "--index", str(copy_index))
    assert code == 0 and "files:      not read (`qa info --verify` checks every file" in out
    code, out, _ = run(capsys, "info", "--index", str(copy_index), "--verify")
    assert code == 0 and "files:      every file matches its checksum and the manifest" in out
    code, out, _ = run(capsys, "info", "--index", str(copy_index), "--verify", "--json")
    assert json.loads(out)["verified"] is True
    path = live(copy_index) / "dense.faiss"
    path.write_bytes(path.read_bytes()[:-10])
    code, out, _ = run(capsys, "info", "--index", str(copy_index), "--json")
    assert code == 0 and json.loads(out)["verified"] is False  # said, not hidden
    code, out, err = run(capsys, "info", "--index", str(copy_index), "--verify")
    assert code == 1 and out == ""
    assert_one_line_error(err, "dense.faiss is damaged (checksum mismatch)")


def test_store_refuses_to_write_vectors_that_are_not_numbers(tmp_path):
    from qa.ingest.chunking import Chunk

    manifest = {"model": {"id": "m", "dim": 4}, "documents": [{"path": "a", "chunks": 1}],
                "chunking": {"version": 1, "max_tokens": 9, "overlap": 1}, "chunks": 1}
    with pytest.raises(ValueError, match="not finite"):
        write_generation(tmp_path, manifest, [Chunk(0, "a", None, 0, 1, "a")],
                         np.full((1, 4), np.nan, np.float32))
    assert not os.path.lexists(tmp_path / "current")


def test_library_errors_are_index_errors(copy_index):
    damage_bm25_range(live(copy_index))
    with pytest.raises(IndexCorruptError, match="BM25 index points outside the passages"):
        LocalStore(copy_index).open()
