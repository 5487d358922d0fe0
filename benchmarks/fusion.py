"""How the ranking was chosen: each signal on the pair of models, on MedQuAD and on the report.

Every configuration ranks all passages of a collection per question, from the same score arrays
the product computes: the pair's passage cosine (with the question's model weights), the same
with the MedQuAD query adapter applied to the MiniLM half, the best-sentence cosine and BM25.
So the comparison is cheap once the collections are indexed; `qa eval` and
`benchmarks/reader_questions.py` remain the reference for the chosen ranking.

Usage (index medquad-small once with `qa eval ... --index DIR`, then):

    python benchmarks/fusion.py --dataset ../shared/benchmarks/medquad-small \\
        --index /tmp/medquad-small-index

Prints a Markdown table: nDCG@10 on the data set; hit@1, hit@3 and MRR on the report's reader
questions (tuning half, locked half) and on the questions in other languages (both halves).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from qa.evaluate import load_dataset, score_run  # noqa: E402
from qa.ingest.terms import tokenize  # noqa: E402
from qa.ingest.text import normalize  # noqa: E402
from qa.retrieve.searcher import Searcher  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
SETS = ("reader_questions_tune", "reader_questions_locked", "multilingual_questions_tune",
        "multilingual_questions_locked")
Arrays = dict[str, np.ndarray]
Scorer = Callable[[Arrays], np.ndarray]


def configurations() -> dict[str, Scorer]:
    """name -> f(arrays) giving one score per passage. "adapted": the MiniLM half of the
    question goes through the query adapter (in the sentence scores too)."""
    configs: dict[str, Scorer] = {"dense": lambda a: a["dense"], "adapted": lambda a: a["adapted"]}
    for lam in (0.25, 0.5, 1.0):
        configs[f"dense + sentence {lam}"] = (
            lambda a, lam=lam: (a["dense"] + lam * a["sentence"]) / (1 + lam))
        configs[f"adapted + sentence {lam}"] = (
            lambda a, lam=lam: (a["adapted"] + lam * a["sentence_adapted"]) / (1 + lam))
        configs[f"adapted + aspect sentence {lam}"] = (
            lambda a, lam=lam: (a["adapted"] + lam * a["aspect_adapted"]) / (1 + lam))
    for alpha in (0.01, 0.02, 0.05):
        configs[f"adapted + BM25/max x {alpha}"] = (
            lambda a, alpha=alpha: a["adapted"] + alpha * a["bm25"])
        configs[f"adapted + aspect sentence 0.25 + BM25/max x {alpha}"] = (
            lambda a, alpha=alpha: (a["adapted"] + 0.25 * a["aspect_adapted"]) / 1.25
            + alpha * a["bm25"])
    return configs


def arrays(searcher: Searcher, question: str) -> Arrays:
    """For every passage: the pair's cosine, with the adapter on MiniLM's half, best sentence,
    BM25 over the best BM25 (a local-store benchmark: it reads the generation's whole arrays)."""
    from qa.retrieve import adapter, aspect
    from qa.retrieve.ranking import CANDIDATES

    generation, embedder = searcher.generation, searcher.embedder
    text, _ = embedder.truncate(question)
    parts, weights, tokens = embedder.encode_question(text)
    query = embedder.join_question(parts, weights)
    parts = [p[None, :] for p in parts]

    adapted = embedder.join_question(
        [adapter.adapt(p[0], m.model_id) for p, m in zip(parts, embedder.members, strict=True)],
        weights)
    sentence = np.full(generation.size, -1.0, dtype=np.float32)
    sentence_adapted = sentence.copy()
    if len(generation.sentence_vectors):  # rows of generation.table: (chunk id, start, end)
        np.maximum.at(sentence, generation.table[:, 0], generation.sentence_vectors @ query)
        np.maximum.at(sentence_adapted, generation.table[:, 0],
                      generation.sentence_vectors @ adapted)
    bm25 = generation.lexical_index().scores(tokenize(question))
    dense = generation.vectors @ query
    ids = np.union1d(np.argsort(-dense, kind="stable")[:CANDIDATES],
                     np.flatnonzero(bm25 > 0)[np.argsort(-bm25[bm25 > 0], kind="stable")
                                              [:CANDIDATES]])  # (as hybrid ranking's candidates)
    with_aspect, aspect_adapted = sentence.copy(), sentence_adapted.copy()
    candidates = generation.passages(ids)
    with_aspect[ids] = aspect.rescore(sentence[ids], candidates, text, tokens,
                                      lambda p: embedder.join_question(p, weights))
    aspect_adapted[ids] = aspect.rescore(sentence_adapted[ids], candidates, text, tokens,
                                         lambda p: embedder.join_question(p, weights))
    return {"dense": dense, "adapted": generation.vectors @ adapted, "sentence": sentence,
            "sentence_adapted": sentence_adapted, "aspect": with_aspect,
            "aspect_adapted": aspect_adapted, "bm25": bm25 / max(float(bm25.max()), 1e-12)}


def dataset_ndcg(searcher: Searcher, dataset_dir: Path, configs: dict[str, Scorer]) -> dict:
    dataset = load_dataset(dataset_dir)
    corpus_ids = {d.path: d.metadata["corpus_id"] for d in dataset.documents}
    chunk_docs = np.array([corpus_ids.get(c.doc, c.doc) for c in searcher.generation.chunks])
    runs: dict[str, list[tuple[str, list[str]]]] = {name: [] for name in configs}
    for qid, text in dataset.queries:
        if qid not in dataset.qrels or not text.strip():
            continue
        a = arrays(searcher, text)
        for name, f in configs.items():
            order = np.argsort(-f(a), kind="stable")[:500]
            runs[name].append((qid, list(dict.fromkeys(chunk_docs[order]))[:100]))
    return {name: score_run(run, dataset.qrels, name).ndcg for name, run in runs.items()}


def report_hits(searcher: Searcher, questions: list[dict], configs: dict[str, Scorer]) -> dict:
    """hit@1, hit@3, MRR of each configuration on the answerable questions."""
    out = {name: np.zeros(3) for name in configs}
    chunks = searcher.generation.chunks
    answerable = [q for q in questions if q["kind"] == "answerable"]
    for q in answerable:
        a = arrays(searcher, q["question"])
        gold = [any(normalize(c.text).startswith(e) for e in q["expected"]) for c in chunks]
        for name, f in configs.items():
            order = np.argsort(-f(a), kind="stable")
            rank = next(r for r, i in enumerate(order, 1) if gold[int(i)])
            out[name] += (rank == 1, rank <= 3, 1 / rank)
    return {name: v / len(answerable) for name, v in out.items()}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, type=Path, help="BEIR-layout data set")
    parser.add_argument("--index", required=True, type=Path,
                        help="its index, as built by `qa eval DATASET --index DIR`")
    args = parser.parse_args()
    from qa.build import build_index

    configs = configurations()
    mq = Searcher(args.index)
    ndcg = dataset_ndcg(mq, args.dataset, configs)
    with tempfile.TemporaryDirectory() as tmp:
        build_index(ROOT / "corpus", tmp, embedder=mq.embedder)
        report = Searcher(tmp, embedder=mq.embedder)
        sets = {name: report_hits(report, read_jsonl(DATA / f"{name}.jsonl"), configs)
                for name in SETS}
    names = " | ".join(f"{s.replace('_questions', '')} hit@1 / hit@3 / MRR" for s in SETS)
    print(f"| configuration | {args.dataset.name} nDCG@10 | {names} |")
    print("|---|---|" + "---|" * len(SETS))
    for name in configs:
        cells = " | ".join("{:.3f} / {:.3f} / {:.3f}".format(*sets[s][name]) for s in SETS)
        print(f"| {name} | {ndcg[name]:.3f} | {cells} |")


if __name__ == "__main__":
    main()
