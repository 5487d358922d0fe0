"""Fuzz (hypothesis, derandomized so every run tries the same cases): questions of any kind, and
manifests and arrays of a real index mutated at random, with their checksums fixed or not.

Whatever the input, `qa` must end with an exit status in the documented set; on an error, one
line on stderr with a hint; on success, stderr only warnings and notes, and with `--json`
stdout valid JSON (no NaN) with finite scores; and the index folder exactly as it was.
"""

from __future__ import annotations

import io
import json
import math
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import REPORT, reseal
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from qa.cli import main
from qa.store import folder as store

CONTROL = {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F))} - {"\n"}
FUZZ = settings(derandomize=True, deadline=None, max_examples=40, database=None,
                suppress_health_check=list(HealthCheck))  # fmt: skip


@pytest.fixture(scope="module")
def fuzz_root(report_index, tmp_path_factory):
    """The report index, its corpus (so the staleness check never wanders) and a scratch area."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "corpus").mkdir()
    shutil.copy(REPORT, root / "corpus" / REPORT.name)
    shutil.copytree(report_index, root / "index", symlinks=True)
    return root


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else b"/"
            for p in sorted(folder.rglob("*"))}  # fmt: skip


def no_nan(value: str):
    raise ValueError(f"{value} is not JSON")


def check_run(capsys, argv: list[str], index: Path, json_mode: bool) -> int:
    """Run `qa ARGV` in-process and check the outcome against the rules in the module text."""
    before = tree(index)
    with warnings.catch_warnings(record=True) as caught:  # a warning would print to stderr
        warnings.simplefilter("always")
        code = main(argv)
    out, err = capsys.readouterr()
    assert [str(w.message) for w in caught] == [], argv
    event(f"{argv[0]}: exit {code}" + (f" ({re.sub(r'/[^ ]+', 'PATH', err)[11:55]}...)"
                                         if code else ""))  # --hypothesis-show-statistics
    assert tree(index) == before, argv
    assert code in (0, 1, 2), (code, err)
    lines = err.splitlines()
    if code:
        assert len(lines) == 1, err
        assert lines[0].startswith("qa: error: ") and "(hint: " in lines[0], err
        assert out == "", out
    else:
        assert all(line.startswith(("qa: warning: ", "qa: note: ")) for line in lines), err
        if json_mode:  # `qa info --json`: one indented object; `qa ask --json`: one per line
            for line in [out] if argv[0] == "info" else out.splitlines():
                payload = json.loads(line, parse_constant=no_nan)
                scores = [hit["score"] for hit in payload.get("hits", [])]
                assert all(isinstance(s, float) and math.isfinite(s) for s in scores)
        else:
            assert not CONTROL & set(out), repr(out)
    assert not CONTROL & set(err), repr(err)
    return code


# ---------------------------------------------------------------- questions

QUESTIONS = st.one_of(
    st.text(max_size=200),
    st.text(st.characters(codec="utf-8", exclude_categories=()), max_size=50),
    st.binary(max_size=100).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.sampled_from(["-k", "--json", "--", "\x1b[2J\x1b]0;x\x07", "a" * 5000, "\u202e?"]),
)


@FUZZ
@given(question=QUESTIONS, k=st.integers(-2, 30), json_mode=st.booleans(),
       mode=st.sampled_from([None, "dense", "lexical", "hybrid", "bogus"]))  # fmt: skip
def test_any_question(capsys, monkeypatch, fuzz_root, question, k, json_mode, mode):
    monkeypatch.setenv("QA_CORPUS", str(fuzz_root / "corpus"))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # `ask -- --index ...`: no question
    argv = ["ask", question, "--index", str(fuzz_root / "index"), "-k", str(k)]
    argv += ["--json"] * json_mode + (["--mode", mode] if mode else [])
    check_run(capsys, argv, fuzz_root / "index", json_mode)


# ---------------------------------------------------------------- manifests

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=8,
)  # fmt: skip


def paths(value, prefix=()):
    """Every place in a JSON value: the paths of keys and items, the root first."""
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()  # fmt: skip
    for key, item in items:
        yield from paths(item, (*prefix, key))


def mutate(manifest: dict, path: tuple, how: str, value) -> dict:
    manifest = json.loads(json.dumps(manifest))
    if not path:
        return value if how == "replace" else manifest
    *parents, last = path
    holder = manifest
    for key in parents:
        holder = holder[key]
    if how == "delete":
        del holder[last]
    elif how == "nest":
        for _ in range(50):
            holder[last] = [holder[last]]
    else:
        holder[last] = value
    return manifest


@FUZZ
@given(data=st.data(), how=st.sampled_from(["replace", "delete", "nest"]), value=JSON_VALUES,
       sealed=st.booleans())  # fmt: skip
def test_any_manifest(capsys, monkeypatch, fuzz_root, data, how, value, sealed):
    monkeypatch.setenv("QA_CORPUS", str(fuzz_root / "corpus"))
    with tempfile.TemporaryDirectory(dir=fuzz_root) as scratch:
        index = Path(scratch) / "index"
        shutil.copytree(fuzz_root / "index", index, symlinks=True)
        build = store.current_build(index)
        original = json.loads((build / "manifest.json").read_text())
        places = list(paths(original))
        path = places[data.draw(st.integers(0, len(places) - 1), label="place")]
        manifest = mutate(original, path, how, value)
        if sealed and isinstance(manifest, dict):
            reseal(build, manifest, files=False)
        else:
            (build / "manifest.json").write_text(json.dumps(manifest))
        corpus = str(fuzz_root / "corpus")
        for argv, json_mode in ((["info", "--json", "--corpus", corpus], True),
                                (["info", "--corpus", corpus], False),
                                (["ask", "back pain", "--json", "-k", "2"], True)):  # fmt: skip
            check_run(capsys, [*argv, "--index", str(index)], index, json_mode)


# ---------------------------------------------------------------- arrays


def rewrite(path: Path, array: np.ndarray | None, header: dict, body: bytes | None) -> None:
    """Write an .npy file with the given header fields over the array's own (and its data)."""
    fields = {"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": False,
              "shape": array.shape, **header}  # fmt: skip
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, fields)
        fh.write(np.ascontiguousarray(array).tobytes() if body is None else body)


NUMBERS = st.one_of(st.integers(-(2**40), 2**40), st.floats(width=32),
                    st.sampled_from([0, -1, 10**6, float("nan"), float("inf")]))  # fmt: skip
DAMAGE = st.one_of(
    st.tuples(st.just("shape"), st.lists(st.integers(0, 10**12), max_size=3).map(tuple)),
    st.tuples(st.just("dtype"), st.sampled_from(["<f4", "<f8", "<i4", "<i8", "<f2", "|b1",
                                                 "<U3", "|O", ">f4", "<c8"])),
    st.tuples(st.just("fortran"), st.just(True)),
    st.tuples(st.just("values"), st.lists(st.tuples(st.integers(0, 10**6), NUMBERS),
                                          min_size=1, max_size=4)),
    st.tuples(st.just("truncate"), st.integers(0, 400)),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=64)),
)


@FUZZ
@given(data=st.data(), damage=DAMAGE, sealed=st.booleans())
def test_any_array(capsys, monkeypatch, fuzz_root, data, damage, sealed):
    monkeypatch.setenv("QA_CORPUS", str(fuzz_root / "corpus"))
    with tempfile.TemporaryDirectory(dir=fuzz_root) as scratch:
        index = Path(scratch) / "index"
        shutil.copytree(fuzz_root / "index", index, symlinks=True)
        build = store.current_build(index)
        names = sorted(p.name for p in build.glob("*.npy"))
        path = build / data.draw(st.sampled_from(names), label="array")
        array = np.load(path, allow_pickle=False)
        kind, what = damage
        if kind in ("shape", "dtype", "fortran"):
            key = {"shape": "shape", "dtype": "descr", "fortran": "fortran_order"}[kind]
            rewrite(path, array, {key: what}, None)
        elif kind == "values" and array.size and array.dtype.kind in "fiu":
            flat = array.reshape(-1).copy()
            for position, number in what:
                with np.errstate(all="ignore"):
                    flat[position % flat.size] = np.asarray(number).astype(array.dtype)
            np.save(path, flat.reshape(array.shape), allow_pickle=False)
        elif kind == "truncate":
            path.write_bytes(path.read_bytes()[:what])
        elif kind == "append":
            path.write_bytes(path.read_bytes() + what)
        if sealed:
            reseal(build)
        check_run(capsys, ["ask", "chiropractor", "--json", "--index", str(index)], index, True)
        check_run(capsys, ["info", "--verify", "--index", str(index)], index, False)


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DOCUMENTS = {p.name: p.read_bytes() for p in sorted(EXAMPLES.glob("*.*")) if p.suffix != ".py"}


@FUZZ
@given(name=st.sampled_from(sorted(DOCUMENTS)), data=st.data())
def test_any_damaged_document(name, data):
    """A PDF, HTML or Markdown file with bytes changed, cut, inserted or truncated is read or
    refused with a reason (ValueError, as `load_corpus` skips it), never anything else."""
    from qa.ingest.loaders import parse_file

    raw = bytearray(DOCUMENTS[name])
    for _ in range(data.draw(st.integers(1, 30), label="edits")):
        at = data.draw(st.integers(0, max(0, len(raw) - 1)), label="at")
        how = data.draw(st.sampled_from(["byte", "cut", "insert", "truncate"]), label="how")
        if how == "byte" and raw:
            raw[at] = data.draw(st.integers(0, 255))
        elif how == "cut":
            del raw[at:at + data.draw(st.integers(1, 500))]
        elif how == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=64))
        else:
            del raw[at:]
    event(name)
    try:
        document = parse_file(name, bytes(raw), {"size": len(raw), "mtime_ns": 0})
    except ValueError:
        return
    assert isinstance(document.text, str) and document.path == name
