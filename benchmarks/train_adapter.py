"""Fit the query adapter (src/qa/retrieve/query_adapter.npy) on MedQuAD question/answer pairs.

Training data: `--docs` NIH documents of medquad-full (a seeded sample) that medquad-small does
not hold, indexed with the product's own pipeline (`qa eval --index`), so the passages and
vectors are exactly what a search sees. Each question's positives are the passages of its
judged answers. The map W starts at the identity and is trained with in-batch negatives
(InfoNCE, temperature `TEMPERATURE`) plus `LAMBDA * ||W - I||^2`; the shipped map is
`(1 - BLEND) * I + BLEND * W`. Usage:

    python benchmarks/train_adapter.py [--docs 400] [--index DIR] [--write]
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

from qa.evaluate import evaluate, load_dataset  # noqa: E402
from qa.retrieve import adapter  # noqa: E402
from qa.store.local import LocalStore  # noqa: E402

MEDQUAD = ROOT.parent / "shared" / "benchmarks"
SEED = 7
LAMBDA = 0.001
TEMPERATURE = 0.05
EPOCHS = 30
BLEND = 0.25


def document(corpus_id: str) -> str:
    """The NIH document an answer id belongs to ("A0000919-3" -> "A0000919")."""
    return corpus_id.split("-")[0]


def subset(dest: Path, docs: int) -> None:
    """A BEIR folder of `docs` medquad-full documents that medquad-small does not hold."""
    full, small = MEDQUAD / "medquad-full", MEDQUAD / "medquad-small"
    rows = lambda path: [json.loads(line) for line in open(path, encoding="utf-8")]  # noqa: E731
    held = {document(c["_id"]) for c in rows(small / "corpus.jsonl")}
    corpus = rows(full / "corpus.jsonl")
    candidates = sorted({document(c["_id"]) for c in corpus} - held)
    random.Random(SEED).shuffle(candidates)
    chosen = set(candidates[:docs])
    keep = [c for c in corpus if document(c["_id"]) in chosen]
    ids = {c["_id"] for c in keep}
    lines = open(full / "qrels.tsv", encoding="utf-8").read().splitlines()
    qrels = [line for line in lines[1:] if line.split("\t")[1] in ids]
    qids = {line.split("\t")[0] for line in qrels}
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "corpus.jsonl").write_text("".join(json.dumps(c) + "\n" for c in keep), "utf-8")
    (dest / "qrels.tsv").write_text("\n".join([lines[0], *qrels]) + "\n", "utf-8")
    queries = [q for q in rows(full / "queries.jsonl") if q["_id"] in qids]
    (dest / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), "utf-8")


def pairs(data: Path, index: Path):
    """(question vectors, passage vectors, each question's positive passage ids)."""
    from qa.retrieve.searcher import Searcher

    dataset = load_dataset(data)
    searcher = Searcher(index)
    generation = searcher.generation
    corpus_ids = [c.doc.split("#")[0] for c in generation.chunks]
    by_doc: dict[str, list[int]] = {}
    for i, doc in enumerate(corpus_ids):
        by_doc.setdefault(doc, []).append(i)
    questions, positives = [], []
    for qid, text in dataset.queries:
        pos = [i for doc in dataset.qrels.get(qid, {}) for i in by_doc.get(doc, [])]
        if pos:
            questions.append(searcher.embedder.encode([text])[0])
            positives.append(pos)
    return np.array(questions), np.asarray(generation.vectors), positives


def train(questions: np.ndarray, passages: np.ndarray, positives: list[list[int]]) -> np.ndarray:
    """The map W (dim x dim), trained as the module text says."""
    import torch

    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    dim = questions.shape[1]
    eye = torch.eye(dim)
    W = torch.nn.Parameter(eye.clone())
    opt = torch.optim.Adam([W], lr=1e-3)
    Q, P = torch.tensor(questions), torch.tensor(passages)
    for _ in range(EPOCHS):
        order = rng.permutation(len(Q))
        for start in range(0, len(Q), 64):
            batch = order[start : start + 64]
            chosen = torch.tensor([rng.choice(positives[i]) for i in batch])
            q = torch.nn.functional.normalize(Q[batch] @ W.T, dim=1)
            logits = q @ P[chosen].T / TEMPERATURE
            loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(batch)))
            loss = loss + LAMBDA * ((W - eye) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return W.detach().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=400, help="MedQuAD documents to train on")
    parser.add_argument("--index", type=Path, help="keep the training subset's index here")
    parser.add_argument("--write", action="store_true", help="write the shipped map")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "medquad-train"
        subset(data, args.docs)
        index = args.index or Path(tmp) / "index"
        evaluate(data, index_dir=index)  # indexes it with the product's pipeline
        questions, passages, positives = pairs(data, index)
        model_id = LocalStore(index).manifest()["model"]["id"]
    W = train(questions, passages, positives)
    shipped = (1 - BLEND) * np.eye(W.shape[0], dtype=np.float32) + BLEND * W
    print(f"{len(questions)} questions, {len(passages)} passages; ||W - I|| = "
          f"{np.linalg.norm(W - np.eye(W.shape[0])):.3f}")
    if args.write:
        np.save(adapter.MAP_FILE, shipped.astype(np.float32), allow_pickle=False)
        meta = {"model": model_id, "fitted_by": "benchmarks/train_adapter.py", "seed": SEED,
                "documents": args.docs, "questions": len(questions), "lambda": LAMBDA,
                "temperature": TEMPERATURE, "epochs": EPOCHS, "blend": BLEND}
        adapter.META_FILE.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        print("wrote", adapter.MAP_FILE)


if __name__ == "__main__":
    main()
