"""Words for what readers see: counts ("1 document", "12 passages"), durations, notices."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    """`n` and the word, in the plural unless n is 1: "1 document", "2 documents".

    Args:
        n: the count.
        word: the singular.
        many: the plural, when it is not the singular plus "s".
    """
    return f"{n} {word if n == 1 else many or word + 's'}"


def duration(seconds: float) -> str:
    """A rough duration in words: "40 seconds", "12 minutes", "2.5 hours"."""
    if seconds < 90:
        return plural(max(1, round(seconds)), "second")
    if seconds < 90 * 60:
        return plural(round(seconds / 60), "minute")
    return f"{seconds / 3600:.1f} hours"


def missing_line(words) -> str:
    """The notice naming a question's key words the documents lack: "Not in the documents:
    mattress, yoga"."""
    return "Not in the documents: " + ", ".join(words)
