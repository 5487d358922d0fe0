"""Fit the query adapter (src/qa/retrieve/query_adapter.npy) on MedQuAD question/answer pairs.

Training data: the NIH documents of medquad-full that medquad-small does not hold (all of them,
or a seeded sample of `--docs`), indexed with the product's own pipeline, so the passages and
vectors are exactly what a search sees. Each question's positives are the passages of its
judged answers; its hard negatives are `HARD_NEGATIVES` other passages of the same NIH document
(the other answers about the same disease: "What causes X?" against X's symptoms), drawn anew
each epoch. The map W starts at the identity and is trained with InfoNCE (temperature
`TEMPERATURE`) over the batch's positives plus each question's hard negatives, plus
`LAMBDA * ||W - I||^2`; the shipped map is `(1 - BLEND) * I + BLEND * W`. Embedding all of
those documents takes about 10 minutes on 2 cores; `--index` keeps (and reuses) that index.
Usage:

    python benchmarks/train_adapter.py [--docs N] [--index DIR] [--write]
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

from qa.build import build_documents  # noqa: E402
from qa.embed.embedder import Embedder  # noqa: E402
from qa.evaluate import load_dataset  # noqa: E402
from qa.retrieve import adapter  # noqa: E402
from qa.store.local import LocalStore  # noqa: E402

MEDQUAD = ROOT.parent / "shared" / "benchmarks"
SEED = 7
LAMBDA = 0.03
TEMPERATURE = 0.05
EPOCHS = 30
HARD_NEGATIVES = 4
BLEND = 0.5


def document(corpus_id: str) -> str:
    """The NIH document an answer id belongs to ("A0000919-3" -> "A0000919")."""
    return corpus_id.split("-")[0]


def subset(dest: Path, docs: int | None) -> None:
    """A BEIR folder of the medquad-full documents that medquad-small does not hold (all, or a
    seeded sample of `docs`)."""
    full, small = MEDQUAD / "medquad-full", MEDQUAD / "medquad-small"
    rows = lambda path: [json.loads(line) for line in open(path, encoding="utf-8")]  # noqa: E731
    held = {document(c["_id"]) for c in rows(small / "corpus.jsonl")}
    corpus = rows(full / "corpus.jsonl")
    candidates = sorted({document(c["_id"]) for c in corpus} - held)
    random.Random(SEED).shuffle(candidates)
    chosen = set(candidates[:docs] if docs else candidates)
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


def pairs(data: Path, index: Path, embedder=None):
    """(question vectors, passage vectors, each question's positive passage ids, each question's
    hard negatives: the other passages of its answers' NIH documents)."""
    from qa.retrieve.searcher import Searcher

    dataset = load_dataset(data)
    searcher = Searcher(index, embedder=embedder)
    generation = searcher.generation
    corpus_ids = [c.doc.split("#")[0] for c in generation.chunks]
    by_answer: dict[str, list[int]] = {}
    by_document: dict[str, list[int]] = {}
    for i, corpus_id in enumerate(corpus_ids):
        by_answer.setdefault(corpus_id, []).append(i)
        by_document.setdefault(document(corpus_id), []).append(i)
    texts, positives, negatives = [], [], []
    for qid, text in dataset.queries:
        judged = dataset.qrels.get(qid, {})
        pos = [i for answer in judged for i in by_answer.get(answer, [])]
        if pos:
            own = {document(answer) for answer in judged}
            texts.append(text)
            positives.append(pos)
            negatives.append([i for d in sorted(own) for i in by_document[d] if i not in pos])
    questions = searcher.embedder.encode(texts)
    return questions, np.asarray(generation.vectors), positives, negatives


def train(questions: np.ndarray, passages: np.ndarray, positives: list[list[int]],
          negatives: list[list[int]]) -> np.ndarray:
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
            hard = torch.tensor([[rng.choice(negatives[i] or positives[i])  # none: a positive
                                  for _ in range(HARD_NEGATIVES)] for i in batch])
            q = torch.nn.functional.normalize(Q[batch] @ W.T, dim=1)
            in_batch = q @ P[chosen].T
            own = torch.einsum("bd,bkd->bk", q, P[hard])
            logits = torch.cat([in_batch, own], dim=1) / TEMPERATURE
            loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(batch)))
            loss = loss + LAMBDA * ((W - eye) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return W.detach().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, help="MedQuAD documents to train on (default: all)")
    parser.add_argument("--index", type=Path, help="keep the training subset's index here")
    parser.add_argument("--write", action="store_true", help="write the shipped map")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "medquad-train"
        subset(data, args.docs)
        index = args.index or Path(tmp) / "index"
        embedder = Embedder("all-MiniLM-L6-v2")  # the map is MiniLM's (alone or in the pair)
        build_documents(load_dataset(data).documents, index, embedder, corpus=str(data))
        questions, passages, positives, negatives = pairs(data, index, embedder)
        model_id = LocalStore(index).manifest()["model"]["id"]
    W = train(questions, passages, positives, negatives)
    shipped = (1 - BLEND) * np.eye(W.shape[0], dtype=np.float32) + BLEND * W
    print(f"{len(questions)} questions, {len(passages)} passages; ||W - I|| = "
          f"{np.linalg.norm(W - np.eye(W.shape[0])):.3f}")
    if args.write:
        np.save(adapter.MAP_FILE, shipped.astype(np.float32), allow_pickle=False)
        meta = {"model": model_id, "fitted_by": "benchmarks/train_adapter.py", "seed": SEED,
                "documents": args.docs or "all not in medquad-small",
                "questions": len(questions), "lambda": LAMBDA, "temperature": TEMPERATURE,
                "epochs": EPOCHS, "hard_negatives": HARD_NEGATIVES, "blend": BLEND}
        adapter.META_FILE.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        print("wrote", adapter.MAP_FILE)


if __name__ == "__main__":
    main()
