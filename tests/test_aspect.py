"""Aspect scores: passages under one heading ordered by what the question asks beyond it."""

from pathlib import Path

import numpy as np
import pytest

from qa.build import build_documents
from qa.evaluate import load_dataset
from qa.ingest.chunking import Chunk
from qa.retrieve import aspect
from qa.retrieve.searcher import Searcher
from qa.store import Passages

DATA = Path(__file__).parent / "data" / "medquad-aspect"  # MedQuAD (CC BY 4.0), one title


def test_token_words_map_tokens_to_their_words():
    question = "What causes Café-pain?"
    offsets = np.array([[0, 0], [0, 4], [5, 11], [12, 15], [15, 16], [16, 17], [17, 21],
                        [21, 22], [0, 0]])  # [CLS] what causes caf ##é - pain ? [SEP]
    words = aspect.token_words(question, offsets)
    assert words == [None, ("what", "what"), ("causes", "caus"), ("cafe", "cafe"),
                     ("cafe", "cafe"), None, ("pain", "pain"), None, None]


def test_aspect_vector_drops_the_heading_words_and_knows_when_to_abstain():
    hidden = np.eye(4, dtype=np.float32)
    words = [None, ("what", "what"), ("genetic", "genet"), ("warsaw", "warsaw")]
    vector = aspect.aspect_vector(hidden, words, frozenset({"warsaw", "syndrom"}))
    assert np.allclose(vector, np.array([0, 1, 1, 0]) / np.sqrt(2))  # "what genetic"
    assert aspect.aspect_vector(hidden, words, frozenset({"back"})) is None  # nothing taken
    only_function_words = [None, ("what", "what"), ("warsaw", "warsaw")]
    assert aspect.aspect_vector(hidden[:3], only_function_words, frozenset({"warsaw"})) is None


def test_rescore_orders_inside_a_group_and_keeps_groups_comparable(monkeypatch):
    # chunks 0-2 under heading A, chunk 3 under B, chunk 4 alone under C; one sentence each
    vectors = np.array([[1, 0], [0, 1], [0.6, 0.8], [1, 0], [0, 1]], dtype=np.float32)
    sections = ["Warsaw syndrome"] * 3 + ["Other", "Warsaw syndrome x"]
    chunks = [Chunk(i, "d.txt", section, 0, 5, "text.") for i, section in enumerate(sections)]
    passages = Passages(np.arange(5), chunks, ["Title"] * 5, vectors, np.arange(6),
                        np.array([[0, 5]] * 5, dtype=np.int32), vectors)
    best = np.array([0.9, 0.5, 0.7, 0.8, 0.6], dtype=np.float32)
    monkeypatch.setattr(aspect, "aspect_vector",
                        lambda hidden, words, heading: np.array([0, 1], dtype=np.float32))
    tokens = [(np.zeros((1, 2)), np.zeros((1, 2)))]  # one model's token outputs and offsets
    out = aspect.rescore(best, passages, "q", tokens, lambda parts: parts[0])
    # group A: aspect scores 0, 1, 0.8 -> best sentence score 0.9 goes to chunk 1
    assert out[:3] == pytest.approx([0.9 - 1.0, 0.9, 0.9 - 0.2])
    assert out[3] == best[3] and out[4] == best[4]  # alone under their headings: unchanged
    assert out[:3].max() == best[:3].max()  # the group as a whole keeps its level


@pytest.fixture(scope="module")
def aspect_searcher(embedder, tmp_path_factory):
    dataset = load_dataset(DATA)
    index = tmp_path_factory.mktemp("aspect-index")
    build_documents(dataset.documents, index, embedder, str(DATA))
    return dataset, Searcher(index, embedder=embedder)


def first_hits(searcher, dataset) -> dict[str, bool]:
    return {text: searcher.search(text, 3)[0].doc in dataset.qrels[qid]
            for qid, text in dataset.queries}


def test_aspect_scores_pick_the_answer_among_passages_on_one_topic(aspect_searcher, monkeypatch):
    dataset, searcher = aspect_searcher
    with_aspect = first_hits(searcher, dataset)
    monkeypatch.setattr(aspect, "rescore", lambda best, *args: best)
    without = first_hits(searcher, dataset)
    question = "What is the outlook for Arachnoid Cysts ?"
    assert with_aspect[question] and not without[question]
    assert sum(with_aspect.values()) > sum(without.values())


def test_a_pair_joins_each_models_aspect_vector_with_the_questions_weights(monkeypatch):
    vectors = np.array([[1, 0, 0, 1], [0, 1, 1, 0]], dtype=np.float32) / np.sqrt(2)
    chunks = [Chunk(i, "d.txt", "Warsaw syndrome", 0, 5, "text.") for i in range(2)]
    passages = Passages(np.arange(2), chunks, ["Title"] * 2, vectors, np.arange(3),
                        np.array([[0, 5]] * 2, dtype=np.int32), vectors)
    parts = {2: np.array([0, 1], np.float32), 3: np.array([1, 0], np.float32)}
    monkeypatch.setattr(aspect, "aspect_vector", lambda hidden, words, heading: parts[len(hidden)])
    joined = []

    def join(aspects):
        joined.append(aspects)
        return np.concatenate([0.9 * aspects[0], 0.1 * aspects[1]])

    tokens = [(np.zeros((2, 2)), np.zeros((2, 2))), (np.zeros((3, 2)), np.zeros((3, 2)))]
    out = aspect.rescore(np.array([0.5, 0.4], np.float32), passages, "q", tokens, join)
    assert [a.tolist() for a in joined[0]] == [[0, 1], [1, 0]]  # one per model, in order
    assert out.argmax() == 1  # the first model's aspect, weighted 0.9, picks the second passage
