"""Plain text (.txt): the loaded text is the file's decoded text, exactly."""

from __future__ import annotations

from qa.ingest.loaders.base import Document, sha256, title_from_filename


def decode(data: bytes) -> str:
    """Decode document bytes: UTF-8 (a BOM is dropped), or UTF-16 when it carries a BOM.

    Raises:
        ValueError: the bytes look binary or are not valid UTF-8.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" in data[:8192]:
        raise ValueError("binary file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not valid UTF-8 (byte {exc.start})") from None


def load(path: str, data: bytes) -> Document:
    """A plain-text document; headings are left for the chunker to recognise.

    Raises:
        ValueError: binary or not valid UTF-8.
    """
    text = decode(data)
    return Document(
        path,
        text,
        "text",
        title_from_filename(path),
        sha256(data),
        source_map=((0, 0, len(text)),) if text else None,
    )
