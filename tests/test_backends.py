"""Embedding backends: ONNX export cached, same vectors as torch, recorded and used by ask."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from test_incremental import write_corpus

from qa.build import build_index
from qa.config import DEFAULT_BACKEND
from qa.embed.embedder import Embedder
from qa.store import folder as store
from qa.store.local import LocalStore

MINILM = "all-MiniLM-L6-v2"  # the backends' mechanics, on the smaller model of the pair


@pytest.fixture(scope="module")
def minilm():
    return Embedder(MINILM, backend="onnx")


def source(embedder: Embedder) -> str:
    """What a one-model Embedder loads (a folder)."""
    return embedder.members[0].spec.load_path()


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    """ONNX exports of the packaged model, made once for this module in a private cache."""
    cache = tmp_path_factory.mktemp("qa-cache")
    old = os.environ.get("QA_CACHE")
    os.environ["QA_CACHE"] = str(cache)
    yield cache
    if old is None:
        del os.environ["QA_CACHE"]
    else:
        os.environ["QA_CACHE"] = old


def test_export_is_cached_in_qa_cache(onnx_cache, minilm):
    embedder = minilm
    from qa.embed import onnx as onnx_model

    path = onnx_model.ensure_export(embedder.model_id, source(embedder), "onnx-int8")
    folder = path.parent
    assert folder.parent == onnx_cache / "onnx" and path.name == "model_int8.onnx"
    assert {"model.onnx", "tokenizer.json", "qa_onnx.json"} <= {p.name for p in folder.iterdir()}
    stamp = path.stat().st_mtime_ns
    assert onnx_model.ensure_export(embedder.model_id, source(embedder), "onnx-int8") == path
    assert path.stat().st_mtime_ns == stamp  # made once, then reused


def test_onnx_backend_matches_torch_and_is_recorded(tmp_path, onnx_cache, capsys):
    from qa.cli import main
    from qa.retrieve.searcher import Searcher

    write_corpus(tmp_path / "c", 4)
    texts = [f"note {i} on back pain and posture" for i in range(5)] + ["pain " * 300]
    torch, onnx = Embedder(MINILM, backend="torch"), Embedder(MINILM, backend="onnx")
    assert np.allclose(onnx.encode(texts), torch.encode(texts), atol=1e-5)
    assert onnx.count_tokens("Mid back pain") == torch.count_tokens("Mid back pain") == 3
    assert onnx.truncate("pain " * 400) == torch.truncate("pain " * 400)
    assert onnx.truncate("pain")[1] is False and onnx.dim == torch.dim and onnx.max_tokens == 254

    spans = [[(0, 4), (5, 6)]] * 5 + [[(0, 9), (1490, 1499)]]  # the last span is past the window
    (onnx_v, onnx_s), (torch_v, torch_s) = (e.encode_spans(texts, spans) for e in (onnx, torch))
    assert np.allclose(onnx_v, torch_v, atol=1e-5) and np.allclose(onnx_s, torch_s, atol=1e-5)
    assert np.allclose(onnx_v, onnx.encode(texts), atol=1e-6)  # the same pass, the same vectors
    assert np.allclose(onnx_s[-1], onnx.encode([texts[-1][1490:1499]])[0], atol=1e-5)  # on its own
    question = "What are the genetic changes related to back pain?"
    (ov, oh, oo), (tv, th, to) = (e.members[0].encode_query(question) for e in (onnx, torch))
    assert np.array_equal(ov, onnx.encode_questions([question])[0])
    assert np.allclose(tv, ov, atol=1e-5)
    assert np.array_equal(oo, to) and np.allclose(oh, th, atol=1e-4)  # the same tokens

    build_index(tmp_path / "c", tmp_path / "i", embedder=torch)
    torch_vectors = LocalStore(tmp_path / "i").open().vectors
    summary = build_index(tmp_path / "c", tmp_path / "i", embedder=onnx)
    assert summary.embedded == 0  # same vector space: torch vectors reused
    int8 = Embedder(MINILM, backend="onnx-int8")
    summary = build_index(tmp_path / "c", tmp_path / "i", embedder=int8)
    assert summary.embedded == summary.chunks == 8  # a different vector space is re-embedded
    stored = LocalStore(tmp_path / "i").open()
    assert stored.manifest["model"]["backend"] == "onnx-int8"
    cosines = (stored.vectors * torch_vectors).sum(axis=1)
    assert cosines.min() > 0.98 and not np.array_equal(stored.vectors, torch_vectors)
    searcher = Searcher(tmp_path / "i")  # the backend comes from the manifest
    assert searcher.embedder.backend == "onnx-int8"
    assert searcher.search("posture advice", k=2)[0].doc.startswith("doc")
    assert main(["info", "--index", str(tmp_path / "i"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["backend"] == "onnx-int8"


@pytest.mark.parametrize("damaged", ["model.onnx", "tokenizer.json", "embeddings.npy"])
def test_a_damaged_export_is_exported_again(onnx_cache, minilm, tmp_path, monkeypatch, caplog,
                                            damaged):  # fmt: skip
    """Found by trying: an export whose model file was cut short failed every run with
    "unexpected InvalidProtobuf" until someone found and deleted the cache folder by hand."""
    import shutil

    from qa.embed import onnx as onnx_model

    embedder = minilm
    good = onnx_model.ensure_export(embedder.model_id, source(embedder), "onnx")
    monkeypatch.setenv("QA_CACHE", str(tmp_path / "cache"))
    folder = onnx_model.export_dir(embedder.model_id, source(embedder))
    shutil.copytree(good.parent, folder)
    with open(folder / damaged, "r+b") as fh:
        fh.truncate(1000)
    stamp = onnx_model._stamp(folder)
    model = onnx_model.load(embedder.model_id, source(embedder), "onnx", threads=1)
    texts = ["Why does my mid back hurt?", "Posture and muscle strain."]
    assert np.allclose(model.encode(texts), embedder.encode(texts), atol=1e-5)
    assert (folder / damaged).stat().st_size == (good.parent / damaged).stat().st_size
    assert onnx_model._stamp(folder) != stamp
    # a second process that found the same damage leaves the new export alone
    made = (folder / "model.onnx").stat().st_mtime_ns
    onnx_model.ensure_export(embedder.model_id, source(embedder), "onnx", damaged=stamp)
    assert (folder / "model.onnx").stat().st_mtime_ns == made
    assert [r.getMessage() for r in caplog.records if r.levelname in ("WARNING", "warning")] == [
        f"the model's ONNX export in {folder} cannot be read; exporting it again"
    ]


def test_an_export_that_stays_unreadable_is_one_error(tmp_path):
    from qa.embed import onnx as onnx_model
    from qa.errors import QAError

    (tmp_path / "model.onnx").write_bytes(b"not a model")
    np.save(tmp_path / onnx_model.EMBEDDINGS, np.zeros((1, 384), np.float32))
    (tmp_path / onnx_model.META).write_text(json.dumps(
        {"max_seq_length": 256, "pad_id": 0, "pad_token": "[PAD]", "dim": 384}))
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    Tokenizer(WordLevel({"[UNK]": 0}, unk_token="[UNK]")).save(str(tmp_path / "tokenizer.json"))
    model = onnx_model.OnnxModel(tmp_path / "model.onnx", 1, lambda: tmp_path / "model.onnx")
    with pytest.raises(QAError) as info:
        model.session(1)  # exported "again" to the same unreadable file: no loop, one error
    assert info.value.message.startswith(f"cannot read the model's ONNX export {tmp_path}")
    assert info.value.hint == f"delete {tmp_path}; the next run exports the model again"


def test_unknown_backend_is_a_usage_error(capsys, tmp_path):
    from qa.cli import main

    write_corpus(tmp_path / "c", 1)
    code = main(["build", "--corpus", str(tmp_path / "c"), "--index", str(tmp_path / "i"),
                 "--backend", "tensorflow"])
    assert code == 2 and "invalid choice: 'tensorflow'" in capsys.readouterr().err


def test_unknown_backend_from_the_environment_says_where_it_came_from(capsys, tmp_path,
                                                                      monkeypatch):  # fmt: skip
    from qa.cli import main

    write_corpus(tmp_path / "c", 1)
    monkeypatch.setenv("QA_BACKEND", "tensorflow")
    code = main(["build", "--corpus", str(tmp_path / "c"), "--index", str(tmp_path / "i")])
    assert code == 2
    assert capsys.readouterr().err == ("qa: error: unknown backend 'tensorflow' (from QA_BACKEND)"
                                       " (hint: choose one of torch, onnx, onnx-int8)\n")


def test_unknown_backend_from_the_environment_is_named_when_asking(capsys, report_index,
                                                                   monkeypatch):  # fmt: skip
    """`qa ask` answers from the index's own backend, and its staleness warning names the
    variable (it said "built with the onnx backend, configured tensorflow")."""
    from qa.cli import main

    monkeypatch.setenv("QA_BACKEND", "tensorflow")
    assert main(["ask", "back pain", "--index", str(report_index), "-k", "1"]) == 0
    assert capsys.readouterr().err == (
        "qa: warning: the index is out of date: QA_BACKEND names no known backend ('tensorflow'; "
        "choose one of torch, onnx, onnx-int8) (hint: run `qa build`)\n")


def test_default_backend_answers_without_torch(report_index):
    """An index built with the default (onnx) backend is searched without importing torch."""
    assert DEFAULT_BACKEND == "onnx"
    assert store.read_manifest(report_index)[1]["model"]["backend"] == "onnx"
    argv = ["ask", "chiropractor", "--index", str(report_index), "--json"]
    code = ("import sys, json; from qa.cli import main\n"
            f"assert main({argv!r}) == 0\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout.splitlines()[0])["hits"]
    assert any(h["section"] == "Chronic Middle Back Pain Treatments" for h in hits)


def test_a_user_without_a_home_gets_a_cache_of_their_own(monkeypatch):
    """Found by trying: run under an arbitrary user id with HOME unset (as some container
    platforms do), every command failed: "cannot load embedding model ...: Could not determine
    home directory", with a hint to choose another model."""
    import tempfile
    from pathlib import Path

    from qa import config

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    for name in ("QA_CACHE", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    assert config.cache_dir() == Path(tempfile.gettempdir()) / f"qa-cache-{os.getuid()}"


def test_onnxruntime_telemetry_stays_off(report_index, tmp_path, monkeypatch):
    """Found by trying: onnxruntime 1.32's official build records usage telemetry on Linux (a
    device id and an event queue under ~/.cache/Microsoft, for upload to Microsoft) for every
    `qa ask`. qa sets its opt-out, ORT_DISABLE_TELEMETRY=1, unless the user set it."""
    from qa import config

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")}  # fmt: skip
    env["HOME"] = str(home)  # (QA_CACHE stays the tests' cache: no export is made again)
    proc = subprocess.run([sys.executable, "-m", "qa", "ask", "back pain", "--index",
                           str(report_index), "-k", "1"], capture_output=True, text=True,
                          timeout=120, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert [p.relative_to(home).as_posix() for p in home.rglob("*")] == []
    monkeypatch.setenv("ORT_DISABLE_TELEMETRY", "0")  # the user's own choice is kept
    config.ensure_offline()
    assert os.environ["ORT_DISABLE_TELEMETRY"] == "0"


def test_spans_without_character_offsets_are_embedded_on_their_own(monkeypatch):
    torch = Embedder(MINILM, backend="torch")
    texts = ["Rest helps. So does gentle movement."]
    spans = [[(0, 11), (12, 36)]]
    tokenizer = torch.members[0].model.tokenizer
    monkeypatch.setattr(type(tokenizer), "is_fast", property(lambda self: False))
    vectors, pooled = torch.encode_spans(texts, spans)
    assert np.allclose(vectors, torch.encode(texts), atol=1e-6)
    assert np.allclose(pooled, torch.encode(["Rest helps.", "So does gentle movement."]), atol=1e-6)


def test_build_threads_are_the_free_cores_unless_configured(monkeypatch):
    from qa import config

    monkeypatch.delenv("QA_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    for load, expected in ((0.2, 2), (0.6, 1), (1.0, 1), (9.0, 1)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        assert config.threads() == expected
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(os, "getloadavg", lambda: (2.4, 0, 0))
    assert config.threads() == 6
    monkeypatch.setenv("QA_THREADS", "3")
    assert config.threads() == 3
    monkeypatch.setenv("QA_THREADS", "zero")
    assert config.threads() == 6
