"""Ranking: the n best passages of a generation for a question, in one of three modes.

    dense    the passages nearest to the question's vector
    lexical  the passages with the best BM25 score for its words
    hybrid   the union of both candidate lists (`CANDIDATES` each), scored by passage cosine
             and best-sentence cosine, ordered by aspect within heading groups
             (`qa.retrieve.fusion`, `qa.retrieve.aspect`)

With a pair of models, a cosine is the weighted mean of the two models' cosines, with the
question's weights (`qa.embed.embedder`). The question's MiniLM vector goes through the query
adapter first (`qa.retrieve.adapter`), in every mode.

Everything is computed from the candidates and the data the store fetched for them
(`Generation.passages`), never from whole-corpus arrays, so the top-N can happen inside a
database.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from qa.embed.embedder import Embedder
from qa.ingest.terms import tokenize
from qa.retrieve import adapter, aspect, rerank
from qa.retrieve.best_sentence import best_sentence
from qa.retrieve.fusion import score_fusion
from qa.store.base import Docs, Generation, Passages

CANDIDATES = 30  # passages each retriever contributes to a hybrid ranking: with 30 instead of
# 50 the top 5 stayed the same for 885 of medquad-small's 888 questions and 995 of 1,000 of
# medquad-full's (top 1: all), nDCG@10 the same to 4 decimals; 40% less sentence work


@dataclass
class Ranking:
    """A ranking of passages, with what was learnt about the question on the way."""

    generation: Generation  # the generation it ranks
    ids: np.ndarray  # chunk ids, best first
    scores: np.ndarray  # their scores (mode-dependent; higher is better)
    passages: Passages  # the ranked passages, in rank order
    query: np.ndarray  # the question's vector, shape (dim,)
    weights: np.ndarray  # each model's weight for the question (`Embedder.question_weights`)
    terms: list[str]  # the question's lexical terms
    truncated: bool
    mode: str
    docs: Docs = None  # the documents the search was limited to (None: all)


def rank(
    generation: Generation,
    embedder: Embedder,
    question: str,
    n: int,
    mode: str,
    docs: Docs = None,
    reranker: rerank.Reranker | None = None,
) -> Ranking:
    """The n best passages for a cleaned question in a retrieval mode (see the module text)."""
    text, truncated = embedder.truncate(question)
    parts, weights, tokens = embedder.encode_question(text)
    query = embedder.join_question(
        [adapter.adapt(p, m.model_id) for p, m in zip(parts, embedder.members, strict=True)],
        weights)  # fmt: skip
    terms = tokenize(question)
    wanted = max(n, rerank.DEPTH) if reranker is not None else n
    pool = max(wanted, CANDIDATES)
    dense_ids, dense_scores = generation.dense(query, wanted if mode == "dense" else pool, docs)
    candidates = None
    if mode == "dense":
        ids, scores = dense_ids, dense_scores
    elif mode == "lexical":
        found = generation.lexical(terms, pool, docs)
        ids, scores = found.ids, found.scores
    else:
        ids = np.union1d(dense_ids, generation.lexical(terms, pool, docs).ids)
        candidates = generation.passages(ids)
        sentences = _sentence_scores(candidates, query, text, tokens,
                                     lambda parts: embedder.join_question(parts, weights))
        scores = score_fusion(candidates.vectors @ query, sentences)
    if mode != "dense":  # (FAISS ranked the dense ones already, ties as it found them)
        order = np.lexsort((ids, -scores))[:wanted]  # best first; ties by passage order
        ids, scores = ids[order], np.asarray(scores)[order]
    if reranker is not None and len(ids):
        shown = generation.passages(ids)
        ids, scores = reranker.rerank(question, ids, [_model_text(shown, i)
                                                      for i in range(len(shown))])
        candidates, order = None, None
    ids, scores = ids[:n].astype(np.int64), scores[:n].astype(np.float32)
    passages = candidates.take(order[:n]) if candidates is not None else generation.passages(ids)
    return Ranking(generation, ids, scores, passages, query, weights, terms, truncated, mode,
                   docs)  # fmt: skip


def distinct(ranking: Ranking, k: int) -> Ranking:
    """The first k passages whose texts differ: a passage found again in a copy of a document
    ("report.pdf" and "report (1).pdf") is shown once, where it ranks best. For readers;
    `qa eval` ranks documents from `rank` itself, where each copy counts."""
    seen: set[str] = set()
    keep = []
    for position, chunk in enumerate(ranking.passages.chunks):
        if chunk.text not in seen:
            seen.add(chunk.text)
            keep.append(position)
            if len(keep) == k:
                break
    order = np.array(keep, dtype=np.int64)
    return replace(ranking, ids=ranking.ids[order], scores=ranking.scores[order],
                   passages=ranking.passages.take(order))  # fmt: skip


def _sentence_scores(candidates: Passages, query: np.ndarray, text: str, tokens: list,
                     join) -> np.ndarray | None:  # fmt: skip
    """Each candidate's best-sentence score, ordered by aspect within heading groups (None for
    a generation stored without sentence vectors)."""
    if not len(candidates.sentence_vectors):
        return None
    best = best_sentence(candidates, query)
    if any(t is None for t in tokens):  # a tokenizer without offsets: no aspect scores
        return best
    return aspect.rescore(best, candidates, text, tokens, join)


def _model_text(passages: Passages, i: int) -> str:
    """The text the model saw for a passage: its heading (or title), then the passage."""
    from qa.ingest.chunking import embed_text

    c = passages.chunks[i]
    return embed_text(c.section, passages.titles[i], c.text)
