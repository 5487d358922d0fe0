"""How the "answered" rule (qa.retrieve.answered) was calibrated, and how it does on its data.

In-domain questions: the MedQuAD questions of a data set and 150 of its titles used as keyword
queries, against its index; the report dev questions (benchmarks/data) against the report.
Off-topic: benchmarks/data/offtopic_questions.txt against both. None of this is the report
test set in tests/data, which only checks the result.

Usage (index the data set once with `qa eval DATASET --index DIR`):

    python benchmarks/calibrate.py --dataset ../shared/benchmarks/medquad-small \
        --index /tmp/medquad-small-index
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from qa.evaluate import load_dataset  # noqa: E402
from qa.retrieve.answered import MIN_COSINE  # noqa: E402
from qa.retrieve.searcher import Searcher, clean_question  # noqa: E402


def features(searcher: Searcher, questions: list[str]) -> list[tuple[float, bool, bool]]:
    """(best cosine, whether one passage holds all content words, answered) per question."""
    from qa.retrieve.lexical import content_terms

    out = []
    for q in questions:
        q = clean_question(q)
        ranking = searcher.rank(q, 1, "dense")
        full = searcher.lexical_index().passages_with_all(content_terms(q)) > 0
        out.append((ranking.best_cosine, full, searcher.is_answered(q, ranking)))
    return out


def describe(name: str, rows: list[tuple[float, bool, bool]], positive: bool) -> None:
    cos = np.array([r[0] for r in rows])
    full = np.array([r[1] for r in rows])
    answered = np.array([r[2] for r in rows])
    wrong = (~answered).sum() if positive else answered.sum()
    print(f"| {name} | {len(rows)} | {cos.min():.3f} | {np.median(cos):.3f} | {cos.max():.3f} "
          f"| {full.mean():.2f} | {wrong} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, type=Path)
    parser.add_argument("--index", required=True, type=Path)
    args = parser.parse_args()
    from qa.build import build_index

    mq = Searcher(args.index)
    dataset = load_dataset(args.dataset)
    queries = [t for q, t in dataset.queries if q in dataset.qrels]
    titles = sorted({d.title for d in dataset.documents if d.title})
    titles = random.Random(0).sample(titles, min(150, len(titles)))
    off = [line.strip() for line in (ROOT / "benchmarks/data/offtopic_questions.txt")
           .read_text(encoding="utf-8").splitlines() if line.strip()]
    dev = [json.loads(line)["question"] for line in
           (ROOT / "benchmarks/data/report_dev_questions.jsonl").read_text().splitlines() if line]
    print(f"MIN_COSINE = {MIN_COSINE}\n")
    print("| questions | n | best cosine min | median | max | share with all words in one "
          "passage | wrongly flagged |")
    print("|---|---|---|---|---|---|---|")
    describe(f"{args.dataset.name} questions (in-domain)", features(mq, queries), True)
    describe(f"{args.dataset.name} titles as keywords (in-domain)", features(mq, titles), True)
    describe(f"off-topic vs {args.dataset.name}", features(mq, off), False)
    with tempfile.TemporaryDirectory() as tmp:
        build_index(ROOT / "corpus", tmp, embedder=mq.embedder)
        report = Searcher(tmp, embedder=mq.embedder)
        describe("report dev questions (in-domain)", features(report, dev), True)
        describe("off-topic vs report", features(report, off), False)


if __name__ == "__main__":
    main()
