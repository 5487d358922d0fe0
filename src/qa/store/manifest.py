"""The manifest of a generation: the keys the rest of qa reads, checked before use."""

from __future__ import annotations

from qa.errors import IndexCorruptError

FORMAT_VERSION = 1


def check(manifest: object, where: str) -> dict:
    """The manifest, when it has the keys the rest of qa reads with the right types.

    Raises:
        IndexCorruptError: another format, or a key missing or of the wrong type (a hand-edited
            or damaged manifest).
    """
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        raise IndexCorruptError(
            f"index at {where} has an unknown format",
            "run `qa build` to rebuild it with this version of qa",
        )
    try:
        ok = (
            isinstance(manifest["model"]["id"], str)
            and isinstance(manifest["model"]["dim"], int)
            and isinstance(manifest["chunks"], int)
            and isinstance(manifest["chunking"], dict)
            and all(isinstance(d["path"], str) for d in manifest["documents"])
        )
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise IndexCorruptError(
            f"index manifest at {where} is incomplete", "run `qa build` to rebuild the index"
        )
    return manifest


def titles(manifest: dict) -> dict[str, str]:
    """Document path -> title (the path when a document has none)."""
    return {d["path"]: d.get("title") or d["path"] for d in manifest["documents"]}
