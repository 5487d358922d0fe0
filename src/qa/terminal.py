"""What `qa` writes to a terminal: text on one line without control characters, and log lines.

Control characters (escape sequences) and bidirectional overrides/isolates could rewrite the
terminal or reorder what it shows; they never reach it. The command line and `qa serve`'s
worker processes set their logging up here alike.
"""

from __future__ import annotations

import logging

from qa.errors import NOTE, name_log_levels

UNSAFE = dict.fromkeys([*range(0x00, 0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F),
                        *range(0x2066, 0x206A)], " ")  # fmt: skip
_UNSAFE_BUT_NEWLINES = {c: r for c, r in UNSAFE.items() if c != ord("\n")}


def terminal_safe(text: object) -> str:
    """`text` on one line, with control characters and bidi overrides made spaces (and what
    cannot be UTF-8, such as an undecodable byte of a file name, a replacement character)."""
    text = str(text).encode("utf-8", "replace").decode("utf-8")
    return " ".join(text.translate(UNSAFE).split())


class SafeFormatter(logging.Formatter):
    """Log lines with control characters and bidi overrides made spaces (line breaks kept,
    for tracebacks under --debug)."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).translate(_UNSAFE_BUT_NEWLINES)


def configure_logging(debug: bool) -> None:
    """`qa: <level>: <message>` lines on stderr: notes and above, or everything with `debug`.
    Does nothing when the process has set logging up already."""
    name_log_levels()
    handler = logging.StreamHandler()  # stderr
    handler.setFormatter(SafeFormatter("qa: %(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if debug else NOTE, handlers=[handler])
