"""Documents of every new kind, made with the real libraries: Word (python-docx), PowerPoint
(python-pptx), OpenDocument (odfpy), EPUB (ebooklib), and scans: text set by fpdf2, rendered to
an image by PDFium, put back in a PDF as a picture (or saved as .png/.jpg/.tiff).

Each holds a fact no other sample (nor the shipped report) holds, for a question that only it
answers; and marks (HEADERMARK, COMMENTMARK...) where something must never be indexed."""

from __future__ import annotations

import io
from pathlib import Path

from fpdf import FPDF

A6 = (105, 148)  # millimetres: small pages keep OCR quick


def text_image(lines: list[tuple[str, int]], size_mm: tuple[int, int] = A6, dpi: int = 200):
    """A greyscale PIL image of a page of `lines` as (text, font size in points)."""
    import pypdfium2 as pdfium

    pdf = FPDF(unit="mm", format=size_mm)
    pdf.set_margins(8, 10)
    pdf.add_page()
    for text, points in lines:
        pdf.set_font("Helvetica", "B" if points > 12 else "", points)
        pdf.multi_cell(0, points * 0.5, text)
        pdf.ln(points * 0.3)
    page = pdfium.PdfDocument(bytes(pdf.output()))[0]
    return page.render(scale=dpi / 72, grayscale=True).to_pil()


FOAM_PAGE = [("Foam rolling", 16),
             ("Roll the foam roller slowly along the upper back for two minutes, then rest.", 10)]
BREATHING_PAGE = [("Breathing exercises", 16),
                  ("Breathe in deeply through the nose for four seconds, then breathe out "
                   "slowly through the mouth.", 10)]  # fmt: skip
ICE_PAGE = [("Ice packs", 16),
            ("Wrap the ice pack in a towel and hold it on the sore spot for twenty minutes.", 10)]


def write_scanned_pdf(path: Path, pages: list, typed_first: str | None = None) -> Path:
    """A PDF whose pages are pictures of text (`pages`: lines as for `text_image`), after a
    typed page of `typed_first` when given (a PDF that mixes both)."""
    pdf = FPDF(unit="mm", format=A6)
    if typed_first:
        pdf.add_page()
        pdf.set_font("Helvetica", size=10)
        pdf.multi_cell(0, 5, typed_first)
    for lines in pages:
        pdf.add_page()
        pdf.image(text_image(lines), x=0, y=0, w=A6[0], h=A6[1])
    pdf.output(str(path))
    return path


def write_image(path: Path, lines: list = ICE_PAGE) -> Path:
    """A picture of text, in the format its suffix names (.png, .jpg, .tiff)."""
    text_image(lines).save(path, dpi=(200, 200))
    return path


def write_docx(path: Path) -> Path:
    """A Word file: title, headings, a list, a table, a header, a footer, a comment, and a
    tracked deletion and insertion."""
    import docx
    from docx.oxml import parse_xml

    document = docx.Document()
    document.add_paragraph("Standing desk guide", style="Title")
    document.add_heading("Monitor height", level=1)
    para = document.add_paragraph("Place the top of the monitor at eye level, an arm's length "
                                  "away from your face.")  # fmt: skip
    document.add_comment(para.runs, text="COMMENTMARK check this", author="Reviewer")
    document.add_heading("Changing position", level=1)
    for item in ("Stand for a few minutes after every half hour of sitting",
                 "Keep the keyboard at elbow height"):  # fmt: skip
        document.add_paragraph(item, style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for cell, text in zip(table._cells, ("Position", "Minutes", "Standing", "15"), strict=True):
        cell.text = text
    tracked = document.add_paragraph("Shift your weight between both feet")
    w = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    tracked._p.append(parse_xml(f'<w:del {w} w:id="91" w:author="R" w:date="2024-01-01T00:00:00Z">'
                                '<w:r><w:delText> DELETEDMARK</w:delText></w:r></w:del>'))
    tracked._p.append(parse_xml(f'<w:ins {w} w:id="92" w:author="R" w:date="2024-01-01T00:00:00Z">'
                                "<w:r><w:t xml:space=\"preserve\"> while you stand.</w:t></w:r>"
                                "</w:ins>"))  # fmt: skip
    section = document.sections[0]
    section.header.paragraphs[0].text = "HEADERMARK Company confidential"
    section.footer.paragraphs[0].text = "FOOTERMARK page"
    document.save(path)
    return path


def write_pptx(path: Path) -> Path:
    """A deck of three slides: titles, bullets, a table, speaker notes, a footer."""
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    deck.core_properties.title = "Yoga for the upper back"
    slides = [
        ("Why yoga", ["Yoga builds strength in the muscles along the spine",
                      "Gentle poses ease stiffness"], "Start with five minutes a day."),
        ("Cat-cow stretch", ["Kneel on all fours", "Arch and round the back in turn"],
         "Repeat the cat-cow stretch ten times each morning."),
        ("Child's pose", ["Sit back on the heels", "Rest the forehead on the floor"], ""),
    ]  # fmt: skip
    for title, bullets, notes in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        body = slide.placeholders[1].text_frame
        body.text = bullets[0]
        for bullet in bullets[1:]:
            body.add_paragraph().text = bullet
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    table = deck.slides[2].shapes.add_table(2, 2, Inches(1), Inches(5), Inches(4), Inches(1))
    for cell, text in zip(table.table.iter_cells(), ("Pose", "Breaths", "Child's pose", "8"),
                          strict=True):  # fmt: skip
        cell.text = text
    deck.save(path)
    return path


def write_odt(path: Path) -> Path:
    """An OpenDocument text: headings, a list, a table, a footnote; a header, a footer, a
    comment and a tracked deletion that must not be indexed."""
    from odf import dc
    from odf.namespaces import XMLNS
    from odf.office import Annotation, ChangeInfo
    from odf.opendocument import OpenDocumentText
    from odf.style import Footer, Header, MasterPage, PageLayout
    from odf.table import Table, TableCell, TableColumn, TableRow
    from odf.text import (
        ChangedRegion,
        Deletion,
        H,
        List,
        ListItem,
        Note,
        NoteBody,
        NoteCitation,
        P,
        TrackedChanges,
    )

    doc = OpenDocumentText()
    layout = PageLayout(name="pl")
    doc.automaticstyles.addElement(layout)
    master = MasterPage(name="Standard", pagelayoutname=layout)
    for part, text in ((Header(), "HEADERMARK"), (Footer(), "FOOTERMARK")):
        part.addElement(P(text=text))
        master.addElement(part)
    doc.masterstyles.addElement(master)
    changes = TrackedChanges()
    region = ChangedRegion(qattributes={(XMLNS, "id"): "c1"})
    deletion, info = Deletion(), ChangeInfo()
    info.addElement(dc.Creator(text="R"))
    info.addElement(dc.Date(text="2024-01-01T00:00:00"))
    deletion.addElement(info)
    deletion.addElement(P(text="DELETEDMARK"))
    region.addElement(deletion)
    changes.addElement(region)
    doc.text.addElement(changes)
    doc.text.addElement(H(outlinelevel=1, text="Vitamin D and bones"))
    para = P(text="Vitamin D helps the body absorb calcium, which keeps the vertebrae strong.")
    comment = Annotation()
    comment.addElement(P(text="COMMENTMARK"))
    para.addElement(comment)
    note = Note(noteclass="footnote")
    note.addElement(NoteCitation(text="1"))
    body = NoteBody()
    body.addElement(P(text="Ask a doctor before taking supplements."))
    note.addElement(body)
    para.addElement(note)
    doc.text.addElement(para)
    doc.text.addElement(H(outlinelevel=2, text="Food sources"))
    items = List()
    for food in ("Oily fish such as salmon", "Egg yolks"):
        item = ListItem()
        item.addElement(P(text=food))
        items.addElement(item)
    doc.text.addElement(items)
    table = Table()
    table.addElement(TableColumn(numbercolumnsrepeated=2))
    for row_text in (("Food", "Units"), ("Salmon", "600")):
        row = TableRow()
        for text in row_text:
            cell = TableCell()
            cell.addElement(P(text=text))
            row.addElement(cell)
        table.addElement(row)
    doc.text.addElement(table)
    doc.save(str(path))
    return path


def write_epub(path: Path) -> Path:
    """A book of two chapters; the spine puts "Drinking water" before "Walking programme",
    the reverse of the order they were added in."""
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("qa-test-book")
    book.set_title("Everyday habits for a healthy back")
    book.set_language("en")
    walking = epub.EpubHtml(title="Walking programme", file_name="walking.xhtml", lang="en")
    walking.content = ("<html><body><p>Walk for twenty minutes on flat ground every day, "
                       "swinging the arms gently.</p></body></html>")  # fmt: skip
    water = epub.EpubHtml(title="Drinking water", file_name="water.xhtml", lang="en")
    water.content = ("<html><body><h1>Drinking water</h1><p>Spinal discs stay supple when you "
                     "drink enough water through the day.</p></body></html>")  # fmt: skip
    for chapter in (walking, water):
        book.add_item(chapter)
    book.toc = [epub.Link("water.xhtml", "Drinking water", "water"),
                epub.Link("walking.xhtml", "Walking programme", "walking")]  # fmt: skip
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", water, walking]
    epub.write_epub(str(path), book)
    return path


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    """A zip archive of `entries`, deflated."""
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()
