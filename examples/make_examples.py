"""Write examples/back-care-handbook.pdf, the multi-page PDF the README adds to the corpus.

Run with the test tools installed (fpdf2 is in the `test` extra):

    .venv/bin/python examples/make_examples.py

The tests build the same PDF with `write_handbook`, so what the README shows is what is tested.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

TITLE = "Back care handbook"
HEADER = "Back care handbook - clinic edition"
PAGES = [
    [
        ("Lifting safely", [
            "Bend your knees and keep the load close to your body when you lift. Twisting while "
            "lifting a heavy box is a common cause of strain in the middle and lower back.",
            "Ask for help with anything heavier than you can hold comfortably at arm's length, "
            "and carry loads in both hands rather than on one side.",
        ]),
    ],
    [
        ("Sleeping positions", [
            "A medium-firm mattress supports the spine better than a very soft one for most "
            "people with back pain.",
            "Sleeping on your side with a pillow between the knees keeps the hips and the spine "
            "in line through the night.",
        ]),
    ],
    [
        ("When to see a doctor", [
            "See a doctor at once if back pain follows a fall or comes with fever, numbness in "
            "the legs, or loss of bladder control.",
            "Pain that has not improved after six weeks of self care also deserves a medical "
            "examination.",
        ]),
    ],
]  # fmt: skip


def write_handbook(path: str | Path, title_metadata: bool = True) -> Path:
    """Write the handbook: a title, one section per page, a running header and page numbers.

    Args:
        path: the PDF file to write.
        title_metadata: whether to set the PDF's Title metadata (else the title must come from
            the first heading).
    """
    from fpdf import FPDF

    class Handbook(FPDF):
        def header(self) -> None:
            self.set_font("Helvetica", "I", 8)
            self.cell(0, 8, HEADER, new_x="LMARGIN", new_y="NEXT")
            self.ln(4)

        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("Helvetica", "I", 8)
            self.cell(0, 10, f"Page {self.page_no()} of {{nb}}", align="C")

    pdf = Handbook()
    pdf.set_creation_date(datetime(2024, 1, 1, tzinfo=timezone.utc))
    if title_metadata:
        pdf.set_title(TITLE)
    for number, sections in enumerate(PAGES):
        pdf.add_page()
        if number == 0:
            pdf.set_font("Helvetica", "B", 22)
            pdf.multi_cell(0, 12, TITLE, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(4)
        for heading, paragraphs in sections:
            pdf.set_font("Helvetica", "B", 15)
            pdf.multi_cell(0, 9, heading, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
            pdf.set_font("Helvetica", "", 11)
            for paragraph in paragraphs:
                pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(4)
    path = Path(path)
    pdf.output(str(path))
    return path


if __name__ == "__main__":
    default = Path(__file__).parent / "back-care-handbook.pdf"
    print(write_handbook(Path(sys.argv[1]) if len(sys.argv) > 1 else default))
