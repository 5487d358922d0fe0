"""FAISS index kinds: chosen by size, exact where it must be, approximate with high recall."""

import json

import numpy as np
import pytest

from qa.cli import main
from qa.store import faiss_index as vector_index


def clustered(n: int, dim: int = 32, centres: int = 40, seed: int = 0) -> np.ndarray:
    """Normalised vectors around random centres, with noise (so neighbours are not trivial)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    x = c[rng.integers(0, centres, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :k]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    pairs = zip(found, truth, strict=True)
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in pairs]))


def test_auto_follows_the_measured_threshold():
    t = vector_index.AUTO_THRESHOLD
    assert vector_index.choose_type(t - 1) == "flat"
    assert vector_index.choose_type(t) == "ivf"
    assert vector_index.choose_type(10, "hnsw") == "hnsw"
    assert vector_index.choose_type(10**7, "flat") == "flat"
    with pytest.raises(ValueError, match="unknown index type"):
        vector_index.choose_type(10, "annoy")


def test_ivf_lists_scale_with_size():
    assert vector_index.ivf_lists(1_000_000) == 4000
    assert vector_index.ivf_lists(100) == 12  # never more than n / 8


def test_nprobe_is_calibrated_on_the_data():
    """Clustered data needs few lists; structureless data needs many (measured at build)."""

    rng = np.random.default_rng(5)
    noise = rng.standard_normal((3000, 32)).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    easy = clustered(3000, centres=10, seed=2)
    nprobes = {}
    for name, x in (("easy", easy), ("noise", noise)):
        index, kind = vector_index.make_index(x, "ivf")
        assert kind == "ivf" and index.ntotal == 3000
        nprobes[name] = index.nprobe
        q = x[:50] + 0.05 * rng.standard_normal((50, 32)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        _, ids = index.search(q, 10)
        assert recall(ids, exact_top(x, q, 10)) >= 0.95
    assert nprobes["easy"] == vector_index.IVF_MIN_NPROBE < nprobes["noise"]


def test_flat_is_exact():
    x = clustered(500)
    index, kind = vector_index.make_index(x, "flat")
    assert kind == "flat" and index.ntotal == 500
    _, ids = index.search(x[:20], 5)
    assert (ids == exact_top(x, x[:20], 5)).all()


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_kinds_keep_recall_and_parameters(kind):
    import faiss

    x, q = clustered(4000), clustered(100, seed=1)
    index, used = vector_index.make_index(x, kind)
    assert used == kind and index.ntotal == 4000
    _, ids = index.search(q, 10)
    assert recall(ids, exact_top(x, q, 10)) >= 0.95
    params = vector_index.search_params(index)
    # the search parameters travel inside the serialised index
    again = faiss.deserialize_index(faiss.serialize_index(index))
    assert vector_index.search_params(again) == params
    if kind == "ivf":
        assert params["nlist"] == vector_index.ivf_lists(4000)
        assert vector_index.IVF_MIN_NPROBE <= params["nprobe"] <= params["nlist"]
    else:
        assert params["efSearch"] == vector_index.HNSW_EF_SEARCH


def test_ivf_on_tiny_data_falls_back_to_exact():
    index, kind = vector_index.make_index(clustered(10), "ivf")
    assert kind == "flat" and index.ntotal == 10


def test_build_index_type_flag_is_recorded_and_searchable(
    capsys, report_corpus, tmp_path, embedder, report_searcher
):
    from qa.build import build_index
    from qa.retrieve.searcher import Searcher

    build_index(report_corpus, tmp_path, embedder=embedder, index_type="hnsw")
    question = "What causes chronic mid back pain?"
    hits = Searcher(tmp_path, embedder=embedder).search(question, k=3)
    exact = report_searcher.search(question, k=3)  # the default (flat) index of the same corpus
    assert [(h.doc, h.start) for h in hits] == [(h.doc, h.start) for h in exact]
    assert main(["info", "--index", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["index_type"] == "hnsw"


def test_cli_refuses_unknown_index_type(capsys, report_corpus, tmp_path):
    code = main(["build", "--corpus", str(report_corpus), "--index", str(tmp_path),
                 "--index-type", "annoy"])
    err = capsys.readouterr().err
    assert code == 2 and "invalid choice: 'annoy'" in err and "hint:" in err


def test_a_rebuild_with_the_same_vectors_reuses_the_faiss_index(
    monkeypatch, report_corpus, tmp_path, embedder
):
    import shutil

    from qa.build import build_index
    from qa.retrieve.searcher import Searcher
    from qa.store import folder as store
    from qa.store import local_generation
    from qa.store.local import LocalStore

    made = []
    real = vector_index.make_index
    monkeypatch.setattr(vector_index, "make_index",
                        lambda vectors, kind=None: made.append(kind) or real(vectors, kind))
    corpus = tmp_path / "corpus"
    shutil.copytree(report_corpus, corpus)
    build_index(corpus, tmp_path / "i", embedder=embedder, index_type="hnsw")
    first = store.current_build(tmp_path / "i") / local_generation.DENSE
    before = first.read_bytes()
    assert made == ["hnsw"]
    build_index(corpus, tmp_path / "i", embedder=embedder, index_type="hnsw")
    assert made == ["hnsw"]  # nothing changed: the index file was copied, not rebuilt
    second = LocalStore(tmp_path / "i").open()
    assert (second.path / local_generation.DENSE).read_bytes() == before
    assert second.manifest["index_type"] == "hnsw"
    assert Searcher(tmp_path / "i", embedder=embedder).search("mid back pain", k=3)
    build_index(corpus, tmp_path / "i", embedder=embedder, index_type="flat")
    assert made == ["hnsw", "flat"]  # another kind asked for: built
    doc = next(corpus.iterdir())
    doc.write_text(doc.read_text(encoding="utf-8") + "\nA new closing paragraph.\n",
                   encoding="utf-8")
    build_index(corpus, tmp_path / "i", embedder=embedder, index_type="flat")
    assert made == ["hnsw", "flat", "flat"]  # other vectors: built
