"""Fit the "answered" model (src/qa/retrieve/answered_model.json) on labelled questions.

Features come from the product's own code path (`Searcher.rank` + `answered.evidence`), so what
is fitted is what runs. Labelled data, never the locked half of the reader questions:

    answerable      report: reader questions, tuning half (benchmarks/data); the older report
                    questions (tests/data, benchmarks/data/report_dev_questions.jsonl); the
                    questions in other languages, tuning half
                    MedQuAD: questions of medquad-small against their own collection
    not answerable  report: near-domain and off-topic questions of the tuning half; off-topic
                    questions (benchmarks/data/offtopic_questions.txt); MedQuAD questions
                    (other health topics) against the report
                    MedQuAD: the off-topic questions against medquad-small

Logistic regression on standardised features, classes balanced, the report's questions weighted
as much as the MedQuAD ones. The threshold is the highest that leaves at most 2% of the report's
answerable training questions flagged "not covered" (the target: at most one answerable question
of a ~50-question set); off-topic recall at that threshold is printed. Usage:

    python benchmarks/train_answered.py [--mq-index DIR] [--write]

Each passage's confidence is this model applied to its own features (`answered.confidences`),
so one model serves the answer and its passages.
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

from qa.build import build_index  # noqa: E402
from qa.embed.weights import english  # noqa: E402
from qa.evaluate import evaluate  # noqa: E402
from qa.retrieve import answered  # noqa: E402
from qa.retrieve.searcher import Searcher, clean_question  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
MEDQUAD = ROOT.parent / "shared" / "benchmarks"
SEED = 20261202
SAMPLE = 300  # MedQuAD questions per group
MAX_FLAGGED = 0.02  # share of the report's answerable questions the threshold may flag


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def features(searcher: Searcher, questions: list[str]) -> np.ndarray:
    """The evidence of each question's first passage, as `Searcher.ask` computes it."""
    rows = []
    for text in questions:
        question = clean_question(text)
        ranking = searcher.rank(question, 1, None)
        gen = ranking.generation
        asked = answered.question_of(question, gen, english(question))
        null = searcher.embedder.join_question(answered.centres(gen.manifest), ranking.weights)
        rows.append(answered.evidence(ranking.passages, 0, ranking.query, asked, null).vector())
    return np.array(rows)


def labelled(report: Searcher, medquad: Searcher) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(group, features, labels) for every group of training questions."""
    rng = random.Random(SEED)
    tune = jsonl(DATA / "reader_questions_tune.jsonl")
    older = jsonl(ROOT / "tests" / "data" / "report_questions.jsonl") + jsonl(
        DATA / "report_dev_questions.jsonl"
    )
    offtopic = [line.strip() for line in (DATA / "offtopic_questions.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")]  # fmt: skip
    other_languages = jsonl(DATA / "multilingual_questions_tune.jsonl")
    full = [q["text"] for q in jsonl(MEDQUAD / "medquad-full" / "queries.jsonl")]
    small = [q["text"] for q in jsonl(MEDQUAD / "medquad-small" / "queries.jsonl")]
    groups = [
        ("report answerable", report, [q["question"] for q in tune if q["kind"] == "answerable"]
         + [q["question"] for q in older if q.get("expected")]
         + [q["question"] for q in other_languages], 1),
        ("report not answerable", report, [q["question"] for q in tune if q["kind"] != "answerable"]
         + [q["question"] for q in older if not q.get("expected")] + offtopic, 0),
        ("medquad -> report", report, rng.sample(full, SAMPLE), 0),
        ("medquad answerable", medquad, rng.sample(small, SAMPLE), 1),
        ("off-topic -> medquad", medquad, offtopic, 0),
    ]  # fmt: skip
    return [(name, features(s, qs), np.full(len(qs), y)) for name, s, qs, y in groups]


def fit(groups) -> answered.Model:
    """The model and its threshold."""
    from sklearn.linear_model import LogisticRegression

    X = np.concatenate([g[1] for g in groups])
    y = np.concatenate([g[2] for g in groups])
    report = np.concatenate([np.full(len(g[2]), g[0].startswith("report")) for g in groups])
    weight = np.where(report, (~report).sum() / max(report.sum(), 1), 1.0)  # sources alike
    for label in (0, 1):  # then classes alike
        weight[y == label] *= len(y) / 2 / weight[y == label].sum()
    mean, scale = X.mean(axis=0), X.std(axis=0) + 1e-9
    lr = LogisticRegression(C=1.0, max_iter=2000).fit((X - mean) / scale, y, sample_weight=weight)
    fitted = answered.Model(answered.FEATURES, mean, scale, lr.coef_[0],
                            float(lr.intercept_[0]), 0.5)  # fmt: skip
    scores = np.sort([fitted.probability(row) for row in groups[0][1]])
    threshold = float(scores[int(np.floor(MAX_FLAGGED * len(scores)))]) - 1e-9
    return answered.Model(answered.FEATURES, mean, scale, lr.coef_[0],
                          float(lr.intercept_[0]), threshold)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mq-index", type=Path, help="keep medquad-small's index here")
    parser.add_argument("--write", action="store_true", help="write answered_model.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        build_index(ROOT / "corpus", Path(tmp) / "report")
        mq_index = args.mq_index or Path(tmp) / "medquad"
        report = Searcher(Path(tmp) / "report")
        evaluate(MEDQUAD / "medquad-small", index_dir=mq_index, embedder=report.embedder)
        medquad = Searcher(mq_index, embedder=report.embedder)
        groups = labelled(report, medquad)
    model = fit(groups)
    print("threshold", round(model.threshold, 4), "coef",
          dict(zip(answered.FEATURES, np.round(model.coef, 3), strict=True)))  # fmt: skip
    for name, X, y in groups:
        p = np.array([model.probability(row) for row in X])
        wrong = int(((p >= model.threshold) != (y == 1)).sum())
        print(f"  {name:24s} {len(y):4d} questions, {wrong} on the wrong side")
    if args.write:
        payload = {"model": model.to_dict(),
                   "fitted_by": "benchmarks/train_answered.py", "seed": SEED,
                   "groups": {g[0]: len(g[2]) for g in groups}}  # fmt: skip
        answered.MODEL_FILE.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print("wrote", answered.MODEL_FILE)


if __name__ == "__main__":
    main()
