"""How the hybrid ranking was chosen: fusion methods and weights on MedQuAD and on the report.

Every configuration ranks all passages of a collection per question, from the same four score
arrays the product computes (passage cosine, best-sentence cosine, best-sentence cosine ordered
by aspect within heading groups - `qa.retrieve.aspect` - and BM25), so the comparison is cheap
once the collections are indexed. `qa eval` remains the reference for the chosen mode
(it ranks candidate pools, as `qa ask` does; the figures agree to within rounding here).

Usage (index medquad-small once with `qa eval ... --index DIR`, then):

    python benchmarks/fusion.py --dataset ../shared/benchmarks/medquad-small \
        --index /tmp/medquad-small-index

Prints a Markdown table: nDCG@10 on the data set, hit@1 and hit@3 on the report's reader
questions (tests/data) and on the separate report dev questions (benchmarks/data).
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
from qa.retrieve import aspect, fusion  # noqa: E402
from qa.retrieve.ranking import CANDIDATES  # noqa: E402
from qa.retrieve.searcher import Searcher  # noqa: E402

Scorer = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min(initial=0)), float(x.max(initial=0))
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def ranks(x: np.ndarray) -> np.ndarray:
    r = np.empty(len(x), dtype=np.float64)
    r[np.argsort(-x, kind="stable")] = np.arange(1, len(x) + 1)
    return r


def configurations() -> dict[str, Scorer]:
    """name -> f(dense, best_sentence, aspect_sentence, bm25) giving one score per passage."""
    configs: dict[str, Scorer] = {
        "dense": lambda d, s, a, b: d,
        "lexical (BM25)": lambda d, s, a, b: b,
        "dense + best sentence (0.5)": lambda d, s, a, b: (d + 0.5 * s) / 1.5,
    }
    for w in (0.5, 0.7, 0.8):
        configs[f"min-max fusion, dense weight {w}"] = (
            lambda d, s, a, b, w=w: w * minmax(d) + (1 - w) * minmax(b)
        )
    for w in (0.5, 0.7):
        configs[f"RRF k=60, dense weight {w}"] = (
            lambda d, s, a, b, w=w: w / (60 + ranks(d)) + (1 - w) / (60 + ranks(b))
        )
    for lam in (0.0, 0.2, 0.5, 1.0):
        for alpha in (0.1, 0.2, 0.3):
            name = f"cosine{' + sentence ' + str(lam) if lam else ''} + BM25/max x {alpha}"
            configs[name] = lambda d, s, a, b, lam=lam, alpha=alpha: fusion.score_fusion(
                d, b, float(b.max(initial=0)), s if lam else None, alpha, lam
            )
    for lam in (0.5, 0.75, 1.0, 1.5):
        for alpha in (0.1, 0.2, 0.3):
            configs[f"cosine + aspect sentence {lam} + BM25/max x {alpha}"] = (
                lambda d, s, a, b, lam=lam, alpha=alpha: fusion.score_fusion(
                    d, b, float(b.max(initial=0)), a, alpha, lam
                )
            )
    return configs


def arrays(
    searcher: Searcher, question: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Passage cosine, best-sentence cosine, the same ordered by aspect inside heading groups
    (over the candidates hybrid search would score: the top 100 of each retriever) and BM25,
    for every passage.

    A local-store benchmark: it reads the local generation's whole arrays (all passage and
    sentence vectors, the BM25 index) rather than the store's top-N candidate methods, so that
    every configuration ranks every passage."""
    generation = searcher.generation
    query, hidden, offsets = searcher.embedder.encode_query(question)
    query = query[0]
    dense = generation.vectors @ query
    sentence = np.full(generation.size, -1.0, dtype=np.float32)
    has_sentences = len(generation.sentence_vectors) > 0
    if has_sentences:  # rows of generation.table: (chunk id, start, end)
        np.maximum.at(sentence, generation.table[:, 0], generation.sentence_vectors @ query)
    bm25 = generation.lexical_index().scores(tokenize(question))
    aspect_sentence = sentence.copy()
    if has_sentences and hidden is not None:
        top = CANDIDATES
        ids = np.union1d(np.argsort(-dense, kind="stable")[:top],
                         np.flatnonzero(bm25 > 0)[np.argsort(-bm25[bm25 > 0], kind="stable")[:top]])
        aspect_sentence[ids] = aspect.rescore(sentence[ids], generation.passages(ids), question,
                                              hidden, offsets)
    return dense, sentence, aspect_sentence, bm25


def dataset_ndcg(searcher: Searcher, dataset_dir: Path, configs: dict[str, Scorer]) -> dict:
    dataset = load_dataset(dataset_dir)
    corpus_ids = {d.path: d.metadata["corpus_id"] for d in dataset.documents}
    chunk_docs = np.array([corpus_ids.get(c.doc, c.doc) for c in searcher.generation.chunks])
    runs: dict[str, list[tuple[str, list[str]]]] = {name: [] for name in configs}
    for qid, text in dataset.queries:
        if qid not in dataset.qrels:
            continue
        d, s, a, b = arrays(searcher, text)
        for name, f in configs.items():
            order = np.argsort(-f(d, s, a, b), kind="stable")[:500]
            runs[name].append((qid, list(dict.fromkeys(chunk_docs[order]))[:100]))
    return {name: score_run(run, dataset.qrels, name).ndcg for name, run in runs.items()}


def report_hits(searcher: Searcher, questions: list[dict], configs: dict[str, Scorer]) -> dict:
    def matches(text: str, expected: str) -> bool:
        return " ".join(text.split()).startswith(expected)

    out = {name: [0, 0] for name in configs}
    chunks = searcher.generation.chunks
    answerable = [q for q in questions if q["expected"]]
    for q in answerable:
        d, s, a, b = arrays(searcher, q["question"])
        for name, f in configs.items():
            top = np.argsort(-f(d, s, a, b), kind="stable")[:3]
            ok = [matches(chunks[int(i)].text, q["expected"]) for i in top]
            out[name][0] += ok[0]
            out[name][1] += any(ok)
    n = len(answerable)
    return {name: (h1 / n, h3 / n) for name, (h1, h3) in out.items()}


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
        test = report_hits(report, read_jsonl(ROOT / "tests/data/report_questions.jsonl"), configs)
        dev = report_hits(report, read_jsonl(ROOT / "benchmarks/data/report_dev_questions.jsonl"),
                          configs)
    print(f"| configuration | {args.dataset.name} nDCG@10 | report hit@1 | report hit@3 "
          "| report dev hit@1 | report dev hit@3 |")
    print("|---|---|---|---|---|---|")
    for name in configs:
        print(f"| {name} | {ndcg[name]:.3f} | {test[name][0]:.3f} | {test[name][1]:.3f} "
              f"| {dev[name][0]:.3f} | {dev[name][1]:.3f} |")


if __name__ == "__main__":
    main()
