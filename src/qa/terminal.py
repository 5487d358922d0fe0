"""What `qa` writes to a terminal: text on one line without control characters, and log lines.

Control characters (escape sequences) and bidirectional overrides/isolates could rewrite the
terminal or reorder what it shows; they never reach it. The command line and `qa serve`'s
worker processes set their logging up here alike, and `json_text` is the one JSON encoding of
`qa ask --json` and `POST /ask`.
"""

from __future__ import annotations

import json
import logging
import re

from qa.errors import NOTE, name_log_levels

UNSAFE = dict.fromkeys([*range(0x00, 0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F),
                        *range(0x2066, 0x206A)], " ")  # fmt: skip
_UNSAFE_BUT_NEWLINES = {c: r for c, r in UNSAFE.items() if c != ord("\n")}
# what of UNSAFE JSON would write raw (it escapes C0 controls itself)
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # C1 controls, bidi


def json_text(value: object, **options) -> str:
    """`value` as JSON that is always valid (no NaN or Infinity: ValueError) and safe on a
    terminal: no raw control character or bidi override, each written as its \\u escape.
    (A search, not `str.translate`: that took 0.4 ms for an answer with one accented letter.)"""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, **options)
    if text.isascii():  # (the usual case: nothing to search)
        return text
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


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
