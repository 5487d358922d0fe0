"""What a file's bytes are, whatever its name says: for the reason a loader gives when the
extension lies (a .docx that is really a PDF, or plain text)."""

from __future__ import annotations

import zipfile

# magic numbers at the start of a file -> what it is
_MAGIC = (
    (b"%PDF-", "a PDF"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"{\\rtf", "an RTF document"),
)  # fmt: skip
_COMPOUND = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # OLE compound file: old Office, or encrypted
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")  # the stream of an encrypted one
ENCRYPTED_OFFICE = "a password-protected (encrypted) Office file"

# a member that names the kind of a zip-based document
_ZIP_KINDS = (
    ("word/document.xml", "a Word document (.docx)"),
    ("ppt/presentation.xml", "a PowerPoint presentation (.pptx)"),
    ("xl/workbook.xml", "an Excel workbook (.xlsx)"),
    ("META-INF/container.xml", "an EPUB book"),
)
_ODF = {
    "application/vnd.oasis.opendocument.text": "an OpenDocument text (.odt)",
    "application/vnd.oasis.opendocument.presentation": "an OpenDocument presentation (.odp)",
    "application/vnd.oasis.opendocument.spreadsheet": "an OpenDocument spreadsheet (.ods)",
}


def describe(data: bytes) -> str:
    """What `data` looks like, in words: "a PDF", "a zip archive", "plain text", "binary data"."""
    head = data[:1024]
    if head.startswith(_COMPOUND):
        return ENCRYPTED_OFFICE if _ENCRYPTED_PACKAGE in data else (
            "an old binary Office file (.doc, .ppt, .xls)")
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if b"%PDF-" in head:  # a PDF may start with some junk
        return "a PDF"
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(data)
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if not head or b"\x00" in head:
        return "binary data" if head else "an empty file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # (not just a character cut at the end of the head)
            return "binary data"
    return "plain text"


def _zip_kind(data: bytes) -> str:
    import io

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if "mimetype" in names:
                mimetype = archive.read("mimetype")[:100].decode("ascii", "replace").strip()
                if mimetype in _ODF:
                    return _ODF[mimetype]
            for member, name in _ZIP_KINDS:
                if member in names:
                    return name
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return "a damaged zip archive"
    return "a zip archive"


def not_a(expected: str, data: bytes) -> ValueError:
    """The error for a file that is not what its extension says: "not a Word document: it is
    a PDF (rename it to match)"."""
    found = describe(data)
    if found == ENCRYPTED_OFFICE:
        return ValueError(f"{found}: save it without a password to index it")
    return ValueError(f"not {expected}: the file is {found} (an extension that does not match "
                      "its content)")  # fmt: skip
