"""The store seam: what search and build need of an index, and nothing more.

A `Store` is where an index lives (a local folder, a PostgreSQL database). It hands out the
live `Generation` (one complete build, read-only and immutable: a reader answers wholly from
the generation it opened), writes a new generation and switches to it atomically, and holds
the build lock. Ranking talks to a `Generation` only through its candidate methods, so a store
that searches inside a database does the top-N there and never ships whole-corpus arrays:

    dense(query, n, docs)            top-N passages by vector, best first
    lexical(terms, n, docs)          top-N passages by BM25
    term_frequencies(terms)          in how many passages each term occurs
    vocabulary()                     every term of the passages
    passages(ids)                    texts, metadata and sentence vectors of given passages

`docs` is None (every document) or a list of document paths the search may answer from.
Chunk ids are positions in the generation's chunk table (0 .. size-1), in corpus order.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from qa import config
from qa.errors import IndexMissingError
from qa.ingest.chunking import Chunk

Docs = Sequence[str] | None


@dataclass(frozen=True)
class Passages:
    """What ranking and presenting need of some passages, in the order they were asked for.

    Attributes:
        ids: their chunk ids (int64).
        chunks: the chunks.
        titles: each chunk's document title.
        vectors: (n, dim) float32 normalised passage vectors.
        bounds: (n + 1,) int64; the sentences of passage i are rows bounds[i]:bounds[i + 1].
        spans: (rows, 2) int32 sentence offsets into each chunk's text.
        sentence_vectors: (rows, dim) float32 normalised sentence vectors.
    """

    ids: np.ndarray
    chunks: list[Chunk]
    titles: list[str]
    vectors: np.ndarray
    bounds: np.ndarray
    spans: np.ndarray
    sentence_vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.chunks)

    def sentence_rows(self, i: int) -> slice:
        """The rows of passage i's sentences, in reading order."""
        return slice(int(self.bounds[i]), int(self.bounds[i + 1]))

    def take(self, positions: np.ndarray) -> Passages:
        """Some of these passages, in the given order."""
        positions = np.asarray(positions, dtype=np.int64)
        rows, bounds = gather_rows(self.bounds, positions)
        at = positions.tolist()
        return Passages(
            self.ids[positions], [self.chunks[i] for i in at],
            [self.titles[i] for i in at], self.vectors[positions], bounds,
            self.spans[rows], self.sentence_vectors[rows],
        )  # fmt: skip


def gather_rows(bounds: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sentence rows of some passages, where passage i owns rows bounds[i]:bounds[i + 1].

    Returns:
        (their rows, in the order of `positions`; the bounds of each passage among them).
    """
    starts = bounds[positions]
    lengths = bounds[positions + 1] - starts
    new_bounds = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    rows = np.arange(int(new_bounds[-1])) + np.repeat(starts - new_bounds[:-1], lengths)
    return rows, new_bounds


@dataclass(frozen=True)
class LexicalHits:
    """The answer of `Generation.lexical`.

    Attributes:
        ids, scores: the top passages by BM25 (score > 0), best first, ties by chunk id.
    """

    ids: np.ndarray
    scores: np.ndarray


class Generation(Protocol):
    """One complete, immutable build of an index, as a searcher reads it."""

    id: str  # changes with every build
    manifest: dict  # what was built, from what, how (see `qa.build`)
    size: int  # passages

    def dense(self, query: np.ndarray, n: int, docs: Docs = None) -> tuple[np.ndarray, np.ndarray]:
        """The n passages nearest to `query` (shape (dim,)): (chunk ids, cosines), best first."""

    def lexical(self, terms: Sequence[str], n: int, docs: Docs = None) -> LexicalHits:
        """The n best passages by BM25 for `terms` (a term repeated counts as often as it
        occurs)."""

    def vocabulary(self) -> Collection[str]:
        """Every BM25 term of the generation (stemmed words; `qa.retrieve.missing`)."""
        ...

    def term_frequencies(self, terms: Sequence[str]) -> np.ndarray:
        """In how many passages of the generation each term occurs (0: unknown to it)."""

    def passages(self, ids: Sequence[int] | np.ndarray) -> Passages:
        """Texts, metadata, vectors and sentence vectors of the given chunk ids."""


@dataclass(frozen=True)
class Batch:
    """Passages of a new generation, handed to a `Writer` in chunk-id order.

    Attributes:
        chunks: the chunks (ids continue where the previous batch ended).
        titles: each chunk's document title.
        keys: each chunk's vector key (model + embedded text), for reuse by later builds.
        vectors: (n, dim) float32 normalised passage vectors.
        spans: per chunk, its sentences' (start, end) offsets into its text.
        sentence_vectors: (sum of sentences, dim) float32 normalised, in order.
    """

    chunks: list[Chunk]
    titles: list[str]
    keys: list[str]
    vectors: np.ndarray
    spans: list[list[tuple[int, int]]]
    sentence_vectors: np.ndarray


class Writer(Protocol):
    """A generation being written: batches in, then one atomic switch (or nothing at all)."""

    def add(self, batch: Batch) -> None:
        """Append passages (in chunk-id order)."""

    def commit(self, manifest: dict) -> str:
        """Make the written generation live in one atomic step; returns its id."""


class Store(Protocol):
    """Where an index lives."""

    location: str  # for messages: a folder, or a database URL without its password
    shared: bool  # many machines read it (a database): a page should not rebuild it by itself

    def current(self) -> str | None:
        """The id of the live generation, or None when nothing was built (cheap)."""

    def manifest(self) -> dict:
        """The live generation's manifest (cheap: no vectors are read).

        Raises:
            IndexMissingError, IndexCorruptError.
        """

    def open(self) -> Generation:
        """The live generation, ready to search.

        Raises:
            IndexMissingError, IndexCorruptError.
        """

    def verify(self) -> str:
        """Read the whole live generation and check it against its manifest (`qa info
        --verify`); returns what was checked, in words.

        Raises:
            IndexMissingError, IndexCorruptError.
        """

    def lock(self, wait: bool = False) -> AbstractContextManager[None]:
        """Hold the build lock (removing what killed builds left behind) while in the block.

        Raises:
            QAError: another build holds it and `wait` is False.
        """

    def reusable(self, keys: Sequence[str], vector_space: str, dim: int) -> Iterator[tuple]:
        """(key, vector, sentence vectors) of live passages with these keys, when the live
        generation was embedded in the same vector space with pooled sentence vectors."""

    def writer(self) -> AbstractContextManager[Writer]:
        """A new generation to write; leaving the block without `commit` leaves no trace.
        The caller holds `lock()`."""


def missing_index(location: str | os.PathLike) -> IndexMissingError:
    """The error for no index at `location`; its hint is the `qa build` command that builds that
    index (with `--index` unless it is where a plain `qa build` builds: $QA_INDEX, else `index`)."""
    where = os.fspath(location)
    command = "qa build"
    if where != config.index_location():
        command += f" --index {shlex.quote(where)}"
    return IndexMissingError(f"no index at {where}", f"run `{command}` to create it")
