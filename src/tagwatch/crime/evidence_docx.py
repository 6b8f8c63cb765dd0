"""The evidence pack as a Word document, for a force that edits the statement before signing.

Same content as the PDF (`evidence.pack_content`), with the map as a PNG. Word files are zip
archives whose entries carry the time they were written, and the document's properties carry
its creation time: both are fixed here (to the run's end), so the same run gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from typing import TYPE_CHECKING

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.shared import Mm, Pt

if TYPE_CHECKING:
    from tagwatch.crime.evidence import PackContent

# The earliest time a zip entry can carry: nothing in the archive says when it was made.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _fixed_zip(data: bytes) -> bytes:
    """The archive again with every entry's time fixed and the same compression."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            target.writestr(entry, source.read(info.filename))
    return out.getvalue()


def docx_document(content: PackContent, map_png: bytes, dated: dt.datetime) -> bytes:
    document = Document()
    section = document.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = Mm(210), Mm(297)
    for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
        setattr(section, side, Mm(15))
    properties = document.core_properties
    properties.title = content.title
    properties.author = "tagwatch crime mapping"
    properties.last_modified_by = "tagwatch crime mapping"
    properties.revision = 1
    properties.created = properties.modified = dated.astimezone(dt.UTC)

    document.add_heading(content.title, level=0)
    document.add_paragraph(content.intro)
    document.add_picture(io.BytesIO(map_png), width=Mm(160))
    document.add_paragraph(content.map_note).runs[0].italic = True
    for title, paragraphs in content.sections:
        document.add_heading(title, level=2)
        for text in paragraphs:
            document.add_paragraph(text)

    document.add_page_break()  # type: ignore[no-untyped-call]
    document.add_heading("Positions", level=2)
    table = document.add_table(rows=1, cols=len(content.positions_header))
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, content.positions_header, strict=True):
        cell.text = text
        cell.paragraphs[0].runs[0].bold = True
    for row in content.positions:
        for cell, text in zip(table.add_row().cells, row, strict=True):
            cell.text = text
    for row in table.rows:
        for cell in row.cells:
            for run in cell.paragraphs[0].runs:
                run.font.size = Pt(7)
    document.add_paragraph(content.positions_note)

    document.add_page_break()  # type: ignore[no-untyped-call]
    document.add_heading(content.statement_heading, level=2)
    for text in content.statement:
        document.add_paragraph(text)
    document.add_paragraph()
    for line in content.signature_lines:
        document.add_paragraph(line)
    document.add_paragraph(content.approvals)

    out = io.BytesIO()
    document.save(out)
    return _fixed_zip(out.getvalue())
