"""Plain text (.txt): the loaded text is the file's decoded text, exactly.

Decoding (Markdown files are decoded the same way): a UTF-16 or UTF-8 byte order mark decides;
else UTF-8 when the bytes are valid UTF-8; else the legacy 8-bit encoding that
charset-normalizer finds most plausible. Where several encodings read the bytes equally well
(short Western text reads the same in cp1250 and cp1252, for example), cp1252 wins: it is what
Windows editors wrote for English and Western European text, and a superset of Latin-1's
printable characters. The encoding used is recorded in the document's metadata ("encoding"),
so that `qa info` can show it.
"""

from __future__ import annotations

from qa.ingest.loaders.base import Document, sha256, title_from_filename

UTF8 = "utf-8"
WESTERN = "cp1252"  # preferred among equally plausible 8-bit encodings (see the module text)


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode document bytes; returns (text, encoding name). See the module text.

    Raises:
        ValueError: the bytes look binary, or no encoding reads them as text.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    if b"\x00" in data[:8192]:
        raise ValueError("binary file")
    try:
        return data.decode("utf-8-sig"), UTF8
    except UnicodeDecodeError as exc:
        utf8_error = exc.start
    encoding = legacy_encoding(data)
    if encoding is None:
        raise ValueError(f"not UTF-8 (byte {utf8_error}), and no other text encoding fits")
    return data.decode(encoding), encoding


def legacy_encoding(data: bytes) -> str | None:
    """The 8-bit encoding that reads `data` with the least mess (cp1252 on a tie), or None
    when none reads it as text."""
    from charset_normalizer import from_bytes

    matches = [
        m for m in from_bytes(data) if not m.encoding.startswith(("utf_16", "utf_32", "utf_8"))
    ]
    if not matches:
        return None
    best = matches[0]
    western = from_bytes(data, cp_isolation=[WESTERN]).best()
    # "equally well" is judged by chaos (mess) alone: charset-normalizer's language coherence
    # rates a Spanish text read as cp1250 above the same text read right as cp1252
    if western is not None and western.chaos <= best.chaos:
        return WESTERN
    return best.encoding


def decode(data: bytes) -> str:
    """Decode document bytes (see `decode_text`).

    Raises:
        ValueError: the bytes look binary, or no encoding reads them as text.
    """
    return decode_text(data)[0]


def load(path: str, data: bytes) -> Document:
    """A plain-text document; headings are left for the chunker to recognise.

    Raises:
        ValueError: binary, or text in an encoding that cannot be told.
    """
    text, encoding = decode_text(data)
    return Document(
        path,
        text,
        "text",
        title_from_filename(path),
        sha256(data),
        metadata={"encoding": encoding},
        source_map=((0, 0, len(text)),) if text else None,
    )
