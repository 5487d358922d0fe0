"""The manifest of a generation: what was built, from what, how. Shared by every store.

A manifest is checked whole before anything reads it (`check`): its format, every key against
`SCHEMA` (types, ranges, no unknown keys, so a hand-edited or damaged manifest is refused with
the key named, never met later as a KeyError or TypeError), its checksum, and the counts that
must agree. A store writes a manifest through `seal`, which adds the format and the checksum:
the sha256 of the manifest's canonical JSON (sorted keys, ASCII, no spaces) without the
checksum itself, so the check does not depend on how the store lays the JSON out.

The schema is checked by hand (a few small spec classes below) rather than by pydantic or
jsonschema: importing either cost 0.3-0.6 s here, as much again as `qa info` takes in all.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass

from qa import config
from qa.errors import REBUILD_HINT, IndexCorruptError

FORMAT_VERSION = 2  # 2: checksummed, checked against SCHEMA; 1: before (rebuild)
CHECKSUM = "checksum"
_MAX_INT = 2**63 - 1
_SHA256 = re.compile(r"[0-9a-f]{64}")


class Invalid(ValueError):
    """A value that does not fit the schema; the message names the key."""


# ---------------------------------------------------------------- the spec classes


@dataclass(frozen=True)
class Int:
    """A whole number (not a bool) from `low` to 2**63 - 1."""

    low: int = 0

    def check(self, value: object, where: str) -> None:
        if type(value) is not int or not self.low <= value <= _MAX_INT:
            raise Invalid(f"{where} must be a whole number >= {self.low}")


@dataclass(frozen=True)
class Num:
    """A finite number."""

    def check(self, value: object, where: str) -> None:
        if type(value) not in (int, float) or not math.isfinite(value):
            raise Invalid(f"{where} must be a finite number")


@dataclass(frozen=True)
class Bool:
    """true or false."""

    def check(self, value: object, where: str) -> None:
        if type(value) is not bool:
            raise Invalid(f"{where} must be true or false")


@dataclass(frozen=True)
class Text:
    """A string, optionally one of `choices` or matching `pattern` in full."""

    choices: tuple[str, ...] = ()
    pattern: re.Pattern | None = None

    def check(self, value: object, where: str) -> None:
        if not isinstance(value, str):
            raise Invalid(f"{where} must be text")
        if self.choices and value not in self.choices:
            raise Invalid(f"{where} must be one of {', '.join(self.choices)}")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise Invalid(f"{where} is malformed")


@dataclass(frozen=True)
class Maybe:
    """`spec`, or null."""

    spec: object

    def check(self, value: object, where: str) -> None:
        if value is not None:
            self.spec.check(value, where)


@dataclass(frozen=True)
class ListOf:
    """A list whose every item fits `spec`."""

    spec: object

    def check(self, value: object, where: str) -> None:
        if not isinstance(value, list):
            raise Invalid(f"{where} must be a list")
        for i, item in enumerate(value):
            self.spec.check(item, f"{where}[{i}]")


@dataclass(frozen=True)
class MapOf:
    """An object whose keys match `keys` and whose values fit `spec`."""

    keys: Text
    spec: object

    def check(self, value: object, where: str) -> None:
        if not isinstance(value, dict):
            raise Invalid(f"{where} must be an object")
        for key, item in value.items():
            self.keys.check(key, f"a key of {where}")
            self.spec.check(item, f"{where}[{key!r}]")


@dataclass(frozen=True)
class Obj:
    """An object with these `required` and `optional` keys (name -> spec), and no others."""

    required: dict
    optional: dict

    def check(self, value: object, where: str) -> None:
        if not isinstance(value, dict):
            raise Invalid(f"{where} must be an object")
        for key in self.required:
            if key not in value:
                raise Invalid(f"{where}.{key} is missing")
        for key, item in value.items():
            spec = self.required.get(key) or self.optional.get(key)
            if spec is None:
                raise Invalid(f"{where} has an unknown key {str(key)[:40]!r}")
            spec.check(item, f"{where}.{key}")


# ---------------------------------------------------------------- the manifest

_DOCUMENT = Obj(
    required={"path": Text(), "chunks": Int()},
    optional={"title": Maybe(Text()), "kind": Text(), "pages": Maybe(Int()),
              "sha256": Text(), "size": Int(), "mtime_ns": Int(), "encoding": Text(),
              "ocr_pages": Int()},
)  # fmt: skip
_SKIPPED = Obj(required={"path": Text(), "reason": Text()},
               optional={"size": Int(), "mtime_ns": Int()})  # fmt: skip
_INDEX_TYPES = ("auto", "flat", "ivf", "hnsw")
_MEMBER = Obj(required={"id": Text(), "dim": Int(1)},
              optional={"query_prefix": Text(), "passage_prefix": Text(),
                        "multilingual": Bool()})  # fmt: skip

SCHEMA = Obj(
    required={
        "format": Int(),
        CHECKSUM: Text(pattern=_SHA256),
        "model": Obj(required={"id": Text(), "dim": Int(1)},
                     optional={"backend": Text(config.BACKENDS), "models": ListOf(_MEMBER),
                               "weights": ListOf(Num())}),  # fmt: skip
        "chunking": Obj(required={"version": Int(), "max_tokens": Int(1), "overlap": Int()},
                        optional={}),  # fmt: skip
        "documents": ListOf(_DOCUMENT),
        "chunks": Int(),
    },
    optional={
        "qa_version": Text(),
        "built_at": Text(),
        "loaded_at_ns": Int(),
        "corpus": Text(),
        "index_type": Text(_INDEX_TYPES),
        "index_request": Text(_INDEX_TYPES),
        "skipped": ListOf(_SKIPPED),
        "sentence_vectors": Text(),
        "keys": ListOf(Text()),
        "lexical": Obj(required={"version": Int(), "k1": Num(), "b": Num()}, optional={}),
        "answered": Obj(required={"version": Int(), "probes": Int()},
                        optional={"centre": ListOf(ListOf(Num())), "cosine": ListOf(Num()),
                                  "sentence": ListOf(Num())}),  # fmt: skip
        "ray": Obj(required={"workers": Int(1)}, optional={}),  # a `qa build --ray`
        "ann": Obj(required={"kind": Text(("flat", "hnsw"))},  # a PostgreSQL store's search
                   optional={"m": Int(1), "ef_construction": Int(1), "ef_search": Int(1),
                             "calibrated_ef_search": Int(1), "recall@10": Num(),
                             "target": Num(), "queries": Int()}),  # fmt: skip
        "store": Obj(required={"kind": Text(), "format": Text(), "schema": Text()},
                     optional={}),  # fmt: skip
        "arrays": ListOf(Text(pattern=re.compile(r"[A-Za-z_][A-Za-z0-9_]*"))),
        "files": MapOf(Text(pattern=re.compile(r"[A-Za-z0-9_.-]+")), Text(pattern=_SHA256)),
    },
)


def checksum(manifest: dict) -> str:
    """The sha256 of a manifest's canonical JSON, without its checksum key."""
    body = {key: value for key, value in manifest.items() if key != CHECKSUM}
    text = json.dumps(body, sort_keys=True, ensure_ascii=True, separators=(",", ":"),
                      allow_nan=False)  # fmt: skip
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def seal(manifest: dict) -> dict:
    """The manifest with this format and its checksum added, as a store writes it.

    Raises:
        ValueError: the manifest does not fit the schema (a bug in whoever made it).
    """
    sealed = {**manifest, "format": FORMAT_VERSION, CHECKSUM: "0" * 64}
    sealed[CHECKSUM] = checksum(sealed)
    try:
        _check_fields(sealed)
    except Invalid as exc:
        raise ValueError(f"cannot write an invalid manifest: {exc}") from None
    return sealed


def check(manifest: object, where: str) -> dict:
    """The manifest, when it is of this format, fits `SCHEMA`, matches its checksum and its
    counts agree.

    Raises:
        IndexCorruptError: another format, a damaged or hand-edited manifest (the message
            names the first key at fault).
    """
    version = manifest.get("format") if isinstance(manifest, dict) else None
    if version != FORMAT_VERSION:
        older = type(version) is int and 0 < version < FORMAT_VERSION
        raise IndexCorruptError(
            f"index at {where} was written by an older qa (format {version}; this qa reads "
            f"format {FORMAT_VERSION})" if older else f"index at {where} has an unknown format",
            "run `qa build` to rebuild it with this version of qa",
        )
    try:
        _check_fields(manifest)
    except Invalid as exc:
        raise IndexCorruptError(f"index manifest at {where} is invalid: {exc}",
                                REBUILD_HINT) from None
    if checksum(manifest) != manifest[CHECKSUM]:
        raise IndexCorruptError(
            f"index manifest at {where} is damaged (checksum mismatch)", REBUILD_HINT
        )
    return manifest


def _check_fields(manifest: dict) -> None:
    """The schema, then the counts that must agree."""
    SCHEMA.check(manifest, "manifest")
    n = manifest["chunks"]
    if sum(d["chunks"] for d in manifest["documents"]) != n:
        raise Invalid("the documents' chunks do not add up to manifest.chunks")
    if "keys" in manifest and len(manifest["keys"]) != n:
        raise Invalid("manifest.keys does not hold one key per chunk")


def titles(manifest: dict) -> dict[str, str]:
    """Document path -> title (the path when a document has none)."""
    return {d["path"]: d.get("title") or d["path"] for d in manifest["documents"]}
