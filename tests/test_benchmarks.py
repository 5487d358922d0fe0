"""The benchmarks' own helpers, run small: a schema change must not break them unseen.

`benchmarks/postgres.py ann` writes tiled vectors through each store's writer with a
hand-made manifest; when the manifest schema gained per-document chunk counts, that writer
stopped working and nothing noticed until a 1,000,000-vector run failed. Here it writes a few
hundred vectors into both stores and searches them back.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def postgres_bench():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import postgres as bench

        yield bench
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.parametrize("kind", ["local", "postgres"])
def test_the_ann_benchmark_writes_a_searchable_generation(postgres_bench, kind, tmp_path,
                                                          pg_server):  # fmt: skip
    from qa.store import open_store

    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((250, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    location = str(tmp_path / "index") if kind == "local" else pg_server.index_url("bench-ann")
    store = open_store(location)
    assert postgres_bench.write_synthetic(store, vectors) > 0
    generation = store.open()
    assert generation.size == 250 and store.manifest()["chunks"] == 250
    ids, _ = generation.dense(vectors[17], 3)
    assert ids[0] == 17


def test_the_adapter_trainer_takes_hard_negatives_from_the_questions_own_document(tmp_path):
    """Each question's hard negatives are the other answers of its NIH document (never its own
    answer, never another document's), and the trained map moves away from the identity."""
    import json

    from qa.build import build_documents
    from qa.embed.embedder import Embedder
    from qa.evaluate import load_dataset

    embedder = Embedder("all-MiniLM-L6-v2")  # the map is MiniLM's, alone or in the pair

    sys.path.insert(0, str(BENCHMARKS))
    try:
        import train_adapter
    finally:
        sys.path.remove(str(BENCHMARKS))
    answers = {"A1-1": ("Gout", "Gout is caused by uric acid crystals in the joints."),
               "A1-2": ("Gout", "Symptoms of gout are sudden pain and swelling of a toe."),
               "A1-3": ("Gout", "Gout is treated with drugs that lower uric acid."),
               "A2-1": ("Asthma", "Asthma narrows the airways and causes wheezing."),
               "A2-2": ("Asthma", "Inhalers with steroids keep asthma under control.")}
    questions = {"Q1-1": ("What causes gout?", "A1-1"), "Q1-3": ("How is gout treated?", "A1-3"),
                 "Q2-1": ("What is asthma?", "A2-1")}
    data = tmp_path / "beir"
    data.mkdir()
    (data / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, (t, x) in answers.items()))
    (data / "queries.jsonl").write_text("".join(
        json.dumps({"_id": q, "text": t}) + "\n" for q, (t, _) in questions.items()))
    (data / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{a}\t1\n" for q, (_, a) in questions.items()))
    build_documents(load_dataset(data).documents, tmp_path / "index", embedder, corpus=str(data))
    vectors, passages, positives, negatives = train_adapter.pairs(data, tmp_path / "index",
                                                                  embedder)  # fmt: skip
    from qa.retrieve.searcher import Searcher

    chunks = Searcher(tmp_path / "index", embedder=embedder).generation.chunks
    answer_of = [c.doc.split("#")[0] for c in chunks]
    assert vectors.shape == (3, 384) and passages.shape == (len(chunks), 384)
    expected = {"A1-1": {"A1-2", "A1-3"}, "A1-3": {"A1-1", "A1-2"}, "A2-1": {"A2-2"}}
    for (_, answer), pos, neg in zip(questions.values(), positives, negatives, strict=True):
        assert {answer_of[i] for i in pos} == {answer}
        assert {answer_of[i] for i in neg} == expected[answer]
    W = train_adapter.train(vectors, passages, positives, negatives)
    assert W.shape == (384, 384) and np.isfinite(W).all()
    assert np.linalg.norm(W - np.eye(384)) > 0.01
