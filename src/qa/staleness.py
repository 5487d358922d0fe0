"""Is the index out of date? Compare its manifest with the corpus folder and the configuration.

The manifest records, per document, the sha256 of its bytes plus its size and mtime when it
was read, the model and the chunker parameters. A file whose size and mtime are unchanged (and
not so recent that a same-tick edit could hide) counts as unchanged without being read; any
other file is hashed, so touching a file without editing it does not make the index stale.

Light on purpose: no torch, no FAISS, no model load, so `qa info` and the page can call it.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from qa import config
from qa.errors import QAError
from qa.ingest.chunking import CHUNKER_VERSION, DEFAULT_OVERLAP
from qa.ingest.loaders import file_stat, is_supported, iter_files
from qa.store import Store, open_store

# Files modified this close to (or after) the moment a build read the corpus are always hashed:
# within one timestamp tick an edit can leave size and mtime as they were.
RACY_NS = 2_000_000_000


@dataclass
class Staleness:
    """How an index differs from its corpus and configuration.

    Attributes:
        stale: True when a rebuild would index something different.
        added: documents in the corpus that the index lacks (paths relative to the corpus).
        changed: documents whose content differs from what was indexed.
        removed: indexed documents no longer in the corpus.
        reasons: other causes, in words: another model, backend (vectors) or chunker than the
            index's; or why the corpus could not be checked (that alone does not make the
            index stale).
        corpus: the corpus folder compared with.
        built_from: the corpus folder the index was built from.
        checked: False when the corpus folder could not be read (then only `reasons` count).
    """

    stale: bool
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    corpus: str = ""
    built_from: str = ""
    checked: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """One line for a warning: what differs, with up to three names per kind."""
        parts = []
        kinds = (("added", self.added), ("changed", self.changed), ("removed", self.removed))
        for label, paths in kinds:
            if paths:
                more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
                parts.append(f"{len(paths)} {label} ({', '.join(paths[:3])}{more})")
        parts.extend(self.reasons)
        if self.stale:
            return "the index is out of date: " + "; ".join(parts)
        if not self.checked:
            return "; ".join(self.reasons)
        return "the index is up to date"


def check(
    index: str | os.PathLike | Store | None = None,
    corpus_dir: str | os.PathLike | None = None,
    model: str | None = None,
) -> Staleness:
    """Compare the live index with a corpus folder and the configured model.

    Args:
        index: the index: a folder or a postgresql:// URL (default: $QA_INDEX or ./index), or
            a `Store`.
        corpus_dir: the corpus to compare with; None means $QA_CORPUS when set, else the folder
            the index was built from (recorded in its manifest).
        model: the configured model; None means $QA_MODEL when set, else no model check (a
            searcher then uses the index's own model). $QA_BACKEND, when set, is checked too.

    Returns:
        A `Staleness`. A corpus folder that is missing or unreadable gives `checked=False`
        with the cause in `reasons`, never an exception.

    Raises:
        QAError: no index, or an unreadable manifest (as `Store.manifest`).
    """
    manifest = open_store(index).manifest()
    built_from = manifest.get("corpus") or ""
    explicit = corpus_dir or os.environ.get("QA_CORPUS")
    corpus = Path(explicit) if explicit else Path(built_from)
    result = Staleness(stale=False, corpus=str(corpus), built_from=built_from)

    result.reasons.extend(_config_reasons(manifest, model))
    result.stale = bool(result.reasons)
    try:
        if not explicit and not built_from:
            raise QAError("cannot check: the index does not say which folder it was built from")
        found = _corpus_files(corpus)
    except QAError as exc:
        result.checked = False
        result.reasons.append(exc.message)  # said, but unknown is not stale
        return result
    _compare(manifest, found, result)
    result.stale = result.stale or bool(result.added or result.changed or result.removed)
    return result


class RecentCheck:
    """`check` of one store, done again only when the last one is over `max_age` seconds old
    or was made for another build: many callers (`qa serve`'s /health) walk the corpus once.

    A result is never older than `max_age` seconds, counted from when its walk began: a
    caller that finds it older waits for a new check (one at a time; the others waiting get
    its result). Thread-safe.
    """

    def __init__(self, store: Store, max_age: float) -> None:
        self.store = store
        self.max_age = max_age
        self._last: tuple[str, float, Staleness] | None = None  # build, walk began, result
        self._lock = threading.Lock()

    def check(self, build: str) -> Staleness:
        """The staleness of `build` (the build being served), at most `max_age` seconds old.

        Raises:
            QAError: as `check` (nothing is kept then).
        """
        with self._lock:
            last = self._last
            if last and last[0] == build and time.monotonic() - last[1] <= self.max_age:
                return last[2]
            began = time.monotonic()
            result = check(self.store)
            self._last = (build, began, result)
            return result


def _config_reasons(manifest: dict, model: str | None) -> list[str]:
    reasons = []
    wanted = model or os.environ.get("QA_MODEL")
    if wanted:
        model_id = config.model_id(wanted)
        if model_id != manifest["model"]["id"]:
            reasons.append(f"built with model {manifest['model']['id']}, configured {model_id}")
    backend = os.environ.get("QA_BACKEND")
    if backend and backend not in config.BACKENDS:  # said, not raised: a warning never stops
        reasons.append(f"QA_BACKEND names no known backend ({backend!r}; choose one of "
                       f"{', '.join(config.BACKENDS)})")  # fmt: skip
    elif backend:
        from qa.embed.models import vector_id

        built = manifest["model"].get("backend", "torch")
        if vector_id(manifest["model"]["id"], backend) != vector_id(manifest["model"]["id"], built):
            reasons.append(f"built with the {built} backend, configured {backend}")
    chunking = manifest.get("chunking") or {}
    if chunking.get("version") != CHUNKER_VERSION or chunking.get("overlap") != DEFAULT_OVERLAP:
        reasons.append(
            f"built with chunker v{chunking.get('version')} (overlap {chunking.get('overlap')}), "
            f"this qa uses v{CHUNKER_VERSION} (overlap {DEFAULT_OVERLAP})"
        )
    return reasons


def _corpus_files(corpus: Path) -> dict[str, Path]:
    """Supported files under the corpus, by relative path; QAError when it cannot be listed."""
    if not corpus.is_dir():
        raise QAError(f"cannot check: no corpus folder at {corpus}")
    try:
        files = iter_files(corpus)
    except QAError as exc:
        raise QAError(f"cannot check: {exc.message}") from None
    return {p.relative_to(corpus).as_posix(): p for p in files if is_supported(p)}


def _compare(manifest: dict, found: dict[str, Path], result: Staleness) -> None:
    indexed = {d["path"]: d for d in manifest["documents"]}
    skipped = {s["path"]: s for s in manifest.get("skipped") or []}
    loaded_at = manifest.get("loaded_at_ns")
    for rel, path in sorted(found.items()):
        if rel in indexed:
            if _differs(path, indexed[rel], loaded_at):
                result.changed.append(rel)
        elif rel not in skipped or not _same_stat(path, skipped[rel]):
            result.added.append(rel)  # new, or a file skipped then and edited since
    result.removed.extend(sorted(set(indexed) - set(found)))


def _differs(path: Path, entry: dict, loaded_at: int | None) -> bool:
    """Whether a file's content differs from the indexed one (unreadable counts as different)."""
    try:
        if (
            loaded_at is not None
            and _same_stat(path, entry)
            and entry["mtime_ns"] < loaded_at - RACY_NS
        ):
            return False
        return hashlib.sha256(path.read_bytes()).hexdigest() != entry.get("sha256")
    except OSError:
        return True


def _same_stat(path: Path, entry: dict) -> bool:
    """Whether size and mtime are those recorded in a manifest entry (a symbolic link that
    leads nowhere: those of the link, as the build recorded them)."""
    try:
        st = file_stat(path)
    except OSError:
        return False
    return entry.get("size") == st["size"] and entry.get("mtime_ns") == st["mtime_ns"]
