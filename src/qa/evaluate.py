"""`qa eval`: retrieval quality on a BEIR-layout data set, with the same pipeline as `qa build`.

A data set folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl``
(``_id``, ``text``) and ``qrels.tsv`` (a header line, then ``query-id  corpus-id  score``;
graded, 0 = not relevant). Each corpus entry becomes a `Document` whose title is the entry's
title; it is chunked and embedded exactly like a corpus file, so the title stands in for the
section heading of its passages. Documents are ranked by their best passage.

Metrics follow trec_eval: nDCG@10 with the graded score as gain (log2 discount), MRR@10 and
Recall@k counting a document as relevant when its score is at least 1. They are averaged over
every query that has at least one relevant document; a query with no results scores 0.

Repeated ids are kept, not dropped: medquad-small files 18 pairs of different answers (and 18
pairs of different questions) under one id each. Every record is indexed and every question
asked; a document id stands for all the texts filed under it, and each question counts once.

A malformed file is one error line naming the file and line (not JSON, not UTF-8, a bad qrels
row). A judged query without text is left out of the scores and named in a warning: scoring
it as a miss would lower every metric for nothing the retrieval did.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qa.errors import QAError
from qa.ingest.loaders import Document
from qa.present.wording import plural

CORPUS = "corpus.jsonl"
QUERIES = "queries.jsonl"
QRELS = "qrels.tsv"
RANK_DEPTH = 100  # documents ranked per query: enough for Recall@100
PASSAGE_DEPTH = 500  # passages ranked per query to find those documents

log = logging.getLogger(__name__)


@dataclass
class Dataset:
    """A BEIR-layout data set as loaded."""

    documents: list[Document]  # path: the corpus id (with "#2", "#3"... for a repeated id)
    queries: list[tuple[str, str]]  # (query id, text), in file order; an id may repeat
    qrels: dict[str, dict[str, int]]  # query id -> document id -> graded relevance
    empty: list[str] = field(default_factory=list)  # judged queries without text: "file:line"


@dataclass
class EvalResult:
    """Averaged metrics of one run (nDCG, MRR and the first recall at cut-off `k`)."""

    ndcg: float
    mrr: float
    recall: float
    recall_100: float
    queries: int
    mode: str
    k: int = 10

    def to_dict(self) -> dict:
        """The `qa eval --json` object: {"ndcg@10": f, "mrr@10": f, "recall@10": f,
        "recall@100": f, "queries": n, "mode": str} (the cut-off in the keys follows k)."""
        return {
            f"ndcg@{self.k}": self.ndcg,
            f"mrr@{self.k}": self.mrr,
            f"recall@{self.k}": self.recall,
            "recall@100": self.recall_100,
            "queries": self.queries,
            "mode": self.mode,
        }


def _lines(path: Path, first: int = 1) -> Iterable[tuple[int, str]]:
    """The non-blank lines of a data set file from line `first`, with their numbers.

    Raises:
        QAError: the file cannot be read, or a line is not UTF-8 (named with its number).
    """
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise QAError(f"cannot read {path}: {exc.strerror}", "a BEIR data set folder has "
                      f"{CORPUS}, {QUERIES} and {QRELS}") from None
    with fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise QAError(f"{path}:{number}: not UTF-8 text (byte 0x{raw[exc.start]:02x} "
                              f"at column {exc.start + 1})",
                              "save the file as UTF-8") from None  # fmt: skip
            if number >= first and line.strip():
                yield number, line


def _jsonl(path: Path) -> Iterable[tuple[int, dict]]:
    for number, line in _lines(path):
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
            obj = None
        if not isinstance(obj, dict) or "_id" not in obj:
            raise QAError(f"{path}:{number}: not a JSON object with an _id",
                          "each line must be one JSON object")
        yield number, obj


def _unique(doc_id: str, used: set[str]) -> str:
    """A document path for `doc_id` that no earlier record has: the id, else "id#2", "id#3"..."""
    path, n = doc_id, 1
    while path in used:
        n += 1
        path = f"{doc_id}#{n}"
    used.add(path)
    return path


def has_text(query: str) -> bool:
    """Whether a query has something to search for (more than white space and control
    characters, which the search drops)."""
    return any(ch.isprintable() and not ch.isspace() for ch in query)


def load_dataset(path: str | os.PathLike) -> Dataset:
    """Read a BEIR-layout folder.

    Raises:
        QAError: a file is missing or malformed, or no query has a relevant document.
    """
    root = Path(path)
    if not root.is_dir():
        raise QAError(f"no data set folder at {root}",
                      f"give a folder with {CORPUS}, {QUERIES} and {QRELS}")
    documents: list[Document] = []
    used: set[str] = set()
    for _, obj in _jsonl(root / CORPUS):
        doc_id = str(obj["_id"])
        text = str(obj.get("text") or "")
        title = str(obj.get("title") or "")
        documents.append(Document(_unique(doc_id, used), text, "text", title,
                                  metadata={"corpus_id": doc_id}))  # fmt: skip
    numbered = [(n, str(obj["_id"]), str(obj.get("text") or ""))
                for n, obj in _jsonl(root / QUERIES)]  # fmt: skip
    qrels: dict[str, dict[str, int]] = {}
    for number, line in _lines(root / QRELS, first=2):  # the first line is the header
        parts = line.rstrip("\r\n").split("\t")
        try:
            qid, did, score = parts[0], parts[1], int(parts[2])
        except (IndexError, ValueError):
            raise QAError(f"{root / QRELS}:{number}: expected query-id, corpus-id, integer score",
                          "separate the three columns with tabs") from None
        qrels.setdefault(qid, {})[did] = score
    relevant = {q for q, r in qrels.items() if any(s > 0 for s in r.values())}
    empty = [f"{root / QUERIES}:{n} ({q})" for n, q, t in numbered
             if q in relevant and not has_text(t)]  # fmt: skip
    queries = [(q, t) for _, q, t in numbered if has_text(t)]
    asked = {q for q, _ in queries}
    judged = {q: r for q, r in qrels.items() if q in relevant and q in asked}
    if not documents or not judged:
        raise QAError(f"nothing to evaluate in {root}",
                      "the corpus must have documents and some query with text a relevant "
                      "document")
    return Dataset(documents, queries, judged, empty)


def ndcg_at(ranking: Sequence[str], qrel: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with graded gains (trec_eval's ndcg_cut): DCG of the top k over the ideal DCG."""
    dcg = sum(max(qrel.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal = sorted((g for g in qrel.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mrr_at(ranking: Sequence[str], qrel: Mapping[str, int], k: int = 10) -> float:
    """Reciprocal rank of the first relevant document within the top k (0 if none)."""
    for i, d in enumerate(ranking[:k]):
        if qrel.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def recall_at(ranking: Sequence[str], qrel: Mapping[str, int], k: int) -> float:
    """Share of the relevant documents found in the top k."""
    relevant = {d for d, g in qrel.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant & set(ranking[:k])) / len(relevant)


def score_run(
    run: Mapping[str, Sequence[str]] | Sequence[tuple[str, Sequence[str]]],
    qrels: Mapping[str, Mapping[str, int]],
    mode: str,
    k: int = 10,
) -> EvalResult:
    """Average the metrics of a run over the judged queries.

    Args:
        run: rankings (document ids, best first) by query id, as a mapping or as (query id,
            ranking) pairs - pairs let a query id that repeats count once per question. A
            judged query missing from the run scores 0.
        qrels: judgements; queries without any relevant document are left out.
        mode: recorded in the result.
        k: the cut-off for nDCG, MRR and the first recall.
    """
    pairs = list(run.items()) if isinstance(run, Mapping) else list(run)
    judged = {q for q, r in qrels.items() if any(g > 0 for g in r.values())}
    asked = {q for q, _ in pairs}
    pairs = [(q, r) for q, r in pairs if q in judged] + [(q, []) for q in judged - asked]
    if not pairs:
        return EvalResult(0.0, 0.0, 0.0, 0.0, 0, mode, k)
    sums = [0.0, 0.0, 0.0, 0.0]
    for qid, ranked in pairs:
        ranking, qrel = list(ranked), qrels[qid]
        sums[0] += ndcg_at(ranking, qrel, k)
        sums[1] += mrr_at(ranking, qrel, k)
        sums[2] += recall_at(ranking, qrel, k)
        sums[3] += recall_at(ranking, qrel, 100)
    n = len(pairs)
    return EvalResult(sums[0] / n, sums[1] / n, sums[2] / n, sums[3] / n, n, mode, k)


def rank_documents(
    chunk_docs: Sequence[str], ids: Sequence[int], depth: int = RANK_DEPTH
) -> list[str]:
    """Documents in the order of their best passage in a passage ranking (first `depth`)."""
    ranked: dict[str, None] = {}
    for i in ids:
        ranked.setdefault(chunk_docs[int(i)], None)
        if len(ranked) >= depth:
            break
    return list(ranked)


def evaluate(
    path: str | os.PathLike,
    mode: str | None = None,
    k: int = 10,
    model: str | None = None,
    index_dir: str | os.PathLike | None = None,
    reranker: str | None = None,
    progress: bool = False,
    embedder=None,
) -> EvalResult:
    """Index a BEIR-layout data set like `qa build` does and measure the ranking of a mode.

    Args:
        path: the data set folder.
        mode: retrieval mode (None: the default).
        k: cut-off for nDCG, MRR and the first recall.
        model: embedding model (default: $QA_MODEL or the packaged one).
        index_dir: where to keep the index, a folder or a PostgreSQL URL (reused next time:
            only changed passages are embedded again); None means a temporary folder, removed
            afterwards.
        reranker: CrossEncoder to rerank with (None: $QA_RERANKER, else none).
        progress: show progress bars (embedding, then queries).
        embedder: an already loaded Embedder (its model wins over `model`).

    Raises:
        QAError: unreadable data set, unknown mode, model not loadable.
    """
    from qa.build import build_documents
    from qa.embed.embedder import Embedder
    from qa.retrieve.searcher import Searcher, clean_question, resolve_mode

    mode = resolve_mode(mode)
    dataset = load_dataset(path)
    if dataset.empty:
        more = f" and {len(dataset.empty) - 3} more" if len(dataset.empty) > 3 else ""
        log.warning("%s without text left out of the scores: %s%s",
                    plural(len(dataset.empty), "query", "queries"), ", ".join(dataset.empty[:3]),
                    more)  # fmt: skip
    source = str(Path(path).resolve())
    if index_dir:
        require_own_index(os.fspath(index_dir), source)
    embedder = embedder or Embedder(model)
    with tempfile.TemporaryDirectory(prefix="qa-eval-") as tmp:
        index = os.fspath(index_dir) if index_dir else tmp  # a folder or a database URL
        build_documents(dataset.documents, index, embedder, corpus=source, progress=progress)
        searcher = Searcher(index, embedder=embedder, reranker=reranker)
        corpus_ids = {d.path: d.metadata["corpus_id"] for d in dataset.documents}
        depth = min(searcher.generation.size, PASSAGE_DEPTH)
        run: list[tuple[str, list[str]]] = []
        queries = [(q, t) for q, t in dataset.queries if q in dataset.qrels]
        for qid, text in _progress(queries, progress):
            ranking = searcher.rank(clean_question(text), depth, mode)
            docs = [corpus_ids.get(c.doc, c.doc) for c in ranking.passages.chunks]
            run.append((qid, rank_documents(docs, range(len(docs)))))
    return score_run(run, dataset.qrels, mode, k)


def require_own_index(index: str, source: str) -> None:
    """Refuse an `--index` that holds another corpus: `qa eval` rebuilds the index it is given
    from the data set, and a reader's index named there by mistake would be replaced.

    Raises:
        QAError: the index was built from something other than the data set at `source`.
    """
    from qa.errors import IndexMissingError
    from qa.store import open_store

    try:
        built_from = open_store(index).manifest().get("corpus")
    except IndexMissingError:
        return  # nothing there yet
    except QAError:
        return  # a damaged index: rebuilt, as `qa build` would
    if built_from != source:
        raise QAError(f"the index at {index} was built from {built_from or 'another corpus'}, "
                      "not from this data set; qa eval would replace it",
                      "give --index a folder of its own; qa eval keeps it for the next run")


def _progress(items: list, show: bool) -> Iterable:
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, desc="Queries", unit="q")
