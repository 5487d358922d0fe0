"""PowerPoint presentations (.pptx), read with python-pptx: one page per slide.

Each slide is a page (a passage's page is its slide number) under a heading: the slide's title,
or "Slide N" when it has none, so a passage's section names its slide. Then the slide's text in
reading order (top to bottom, then left to right): each paragraph of a text box a line (bullets
are sentences of their own), tables row by row, grouped shapes included; then the speaker
notes, under the same slide. Footers, slide numbers and dates are left out. The presentation's
title is its document title, else the first slide's.
"""

from __future__ import annotations

from qa.ingest.loaders.archive import damaged, open_zip
from qa.ingest.loaders.base import Document, TextBuilder
from qa.ingest.loaders.html import BULLET
from qa.ingest.text import normalize

MAX_SHAPE_DEPTH = 20  # groups nested deeper than this are not opened


def load(path: str, data: bytes) -> Document:
    """A presentation's text, one page per slide, the slide titles as sections.

    Raises:
        ValueError: not a presentation, password-protected, damaged, or too large inflated.
    """
    from pptx import Presentation

    archive = open_zip(data, "a PowerPoint presentation (.pptx)", "ppt/presentation.xml")
    try:
        deck = Presentation(archive.fp)
        out = TextBuilder()
        first_title = ""
        for number, slide in enumerate(deck.slides, 1):
            title = _slide_title(slide)
            first_title = first_title or title
            out.new_page()
            out.heading(title or f"Slide {number}")
            for shape in _in_reading_order(slide.shapes):
                if shape.shape_id != getattr(slide.shapes.title, "shape_id", None):
                    _write_shape(out, shape, 0)
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                _write_lines(out, _paragraphs(slide.notes_slide.notes_text_frame))
        title = normalize(deck.core_properties.title or "") or first_title
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - XML and package errors of a damaged part
        raise damaged(exc) from None
    return out.document(path, data, "pptx", title, metadata={"pages": len(out.pages)})


def _slide_title(slide) -> str:
    shape = slide.shapes.title
    return normalize(shape.text_frame.text) if shape is not None and shape.has_text_frame else ""


def _in_reading_order(shapes) -> list:
    """Shapes top to bottom, then left to right (shapes without a position last)."""
    return sorted(shapes, key=lambda s: (s.top is None, s.top or 0, s.left or 0))


_LEFT_OUT = ("FOOTER", "SLIDE_NUMBER", "DATE")


def _write_shape(out: TextBuilder, shape, depth: int) -> None:
    """A shape's text: its paragraphs, a table's rows, or a group's shapes."""
    if shape.is_placeholder and shape.placeholder_format.type is not None \
            and shape.placeholder_format.type.name in _LEFT_OUT:
        return
    if shape.shape_type is not None and shape.shape_type.name == "GROUP":
        if depth < MAX_SHAPE_DEPTH:
            for inner in _in_reading_order(shape.shapes):
                _write_shape(out, inner, depth + 1)
        return
    if getattr(shape, "has_table", False) and shape.has_table:
        rows = [" | ".join(normalize(cell.text) for cell in row.cells) for row in shape.table.rows]
        _write_lines(out, [row for row in rows if row.strip(" |")])
    elif shape.has_text_frame:
        _write_lines(out, _paragraphs(shape.text_frame))


def _paragraphs(frame) -> list[str]:
    """The lines of a text frame: one per paragraph, an indented one (a sub-bullet) marked."""
    lines = []
    for paragraph in frame.paragraphs:
        text = normalize("".join(run.text for run in paragraph.runs) or paragraph.text)
        if text:
            lines.append(text)
    return [BULLET + line for line in lines] if len(lines) > 1 else lines


def _write_lines(out: TextBuilder, lines: list[str]) -> None:
    """A block of lines (a text box, a table, the notes)."""
    if not lines:
        return
    out.separate()
    out.add("\n".join(lines))
