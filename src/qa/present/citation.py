"""How a passage is cited for a reader: "title, section, p. N" (shared by the CLI and the page)."""

from __future__ import annotations


def cite(title: str | None, section: str | None, page: int | None) -> str:
    """Cite a passage as "title, section, p. N".

    Unknown parts are left out, and so is a section that only repeats the title.
    """
    parts = [title] if title else []
    if section and (not title or section.strip().lower() != title.strip().lower()):
        parts.append(section)
    if page is not None:
        parts.append(f"p. {int(page)}")
    return ", ".join(parts)
