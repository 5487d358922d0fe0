"""Zip-based documents (.docx, .pptx, .odt, .epub): the archive opened with its size checked.

A small archive can claim to inflate to gigabytes (a zip bomb) or hold tens of thousands of
entries, each of which the format libraries would read. Before any library looks inside, the
archive's directory is read and refused when it declares more than `MAX_ENTRIES` entries, or
more bytes once inflated than the reading process may hold (its memory limit, `sandbox.py`:
the libraries keep the inflated parts in memory). An entry that inflates to more than it
declares is stopped by Python's zipfile at the declared size, as a damaged entry.
"""

from __future__ import annotations

import io
import zipfile

from qa import config
from qa.ingest.loaders.sniff import not_a

MAX_ENTRIES = 10_000


def max_inflated() -> int:
    """The most bytes an archive may inflate to: this process's memory limit, when it has one
    (the reading process does), else the configured one."""
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit != resource.RLIM_INFINITY:
            return limit
    except (ImportError, OSError, ValueError):  # no resource limits on this system
        pass
    return config.DEFAULT_PARSE_MB * 1_000_000


def open_zip(data: bytes, expected: str, member: str) -> zipfile.ZipFile:
    """The archive of a zip-based document that holds `member` (its main part).

    Args:
        data: the file's bytes.
        expected: what the file should be, in words ("a Word document").
        member: the part every such document has ("word/document.xml").

    Raises:
        ValueError: not a zip (the reason says what it is), damaged, too many entries, too
            large once inflated, or without `member` (another kind of zip).
    """
    if not data.startswith(b"PK"):
        raise not_a(expected, data)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise ValueError("damaged or truncated file (not a readable zip archive)") from None
    if len(entries) > MAX_ENTRIES:
        raise ValueError(f"a zip archive of {len(entries):,} entries, over the limit of "
                         f"{MAX_ENTRIES:,} (a zip bomb?)")  # fmt: skip
    inflated, limit = sum(e.file_size for e in entries), max_inflated()
    if inflated > limit:
        raise ValueError(f"inflates to {inflated / 1e6:,.0f} MB, more than the "
                         f"{limit / 1e6:,.0f} MB a file may take to read (a zip bomb?)")
    if member not in archive.NameToInfo:
        raise not_a(expected, data)
    if any(e.flag_bits & 0x1 for e in entries):
        raise ValueError("password-protected (encrypted) archive: save it without a password")
    return archive


def damaged(exc: Exception) -> ValueError:
    """The error for a zip-based document whose parts cannot be read (a damaged entry, bad
    XML), naming what the library reported. Running out of memory or of recursion is no
    damage: those are raised again, for the reading process to name (`sandbox.py`)."""
    if isinstance(exc, MemoryError | RecursionError):
        raise exc
    detail = str(exc).splitlines()[0][:120] if str(exc) else exc.__class__.__name__
    return ValueError(f"damaged file ({detail})")
