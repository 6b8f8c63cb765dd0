"""Evidence packs (PDF and Word): only for qualified matches, reproducible to the byte, audited."""

from __future__ import annotations

import base64
import datetime as dt
import io
import re
import zipfile
import zlib
from xml.sax.saxutils import escape

import pytest
from crime_scene import SCENE, T0
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from tagwatch.access.models import AuditEntry
from tagwatch.access.principal import Principal
from tagwatch.crime import evidence, service
from tagwatch.crime.map_image import PIXELS_PER_POINT, drawing_png
from tagwatch.crime.models import CrimeMatchRun

HUB = Principal(None, "hub", "Hub", frozenset({"t"}), frozenset())


def pdf_text(pdf: bytes) -> str:
    """The strings drawn on the pages, from the (ASCII85 and deflate encoded) streams."""
    out = []
    for stream in re.findall(rb"stream\r?\n(.*?)~>endstream", pdf, re.S):
        content = zlib.decompress(base64.a85decode(stream))
        out += re.findall(rb"\((.*?)\) Tj", content)
    return " ".join(s.decode("latin-1") for s in out)


def _matched(db: Session, make_wearer, add_fixes) -> int:  # type: ignore[no-untyped-def]
    add_fixes(make_wearer("TW-EVID"), [(m, -600 + 60 * m, 20.0) for m in range(21)], accuracy=9)
    end = T0 + dt.timedelta(minutes=30)
    line = (
        f"MPS,RB,Robbery,MPS20260302,01/5/26,{T0:%Y%m%d%H%M%S},{end:%Y%m%d%H%M%S},"
        f"{SCENE[0]:.0f},{SCENE[1]:.0f},,,,\n"
    )
    batch = service.import_batch(db, line.encode(), file_name="e.csv", principal=HUB)
    return service.batch_matches(db, batch.batch_id, HUB)[0].match_id


def test_a_qualified_match_gives_the_same_pdf_every_time(
    db: Session, make_wearer, add_fixes
) -> None:  # type: ignore[no-untyped-def]
    match_id = _matched(db, make_wearer, add_fixes)
    with pytest.raises(service.CrimeError, match="qualified"):
        evidence.evidence_pack(db, match_id, HUB)
    service.review_match(db, match_id, HUB, "qualified", "Passed the scene")
    first = evidence.evidence_pack(db, match_id, HUB)
    # Fixes arriving after the run do not change the pack of that run.
    add_fixes(make_wearer("TW-LATE"), [(5, 0.0, 0.0)])
    second = evidence.evidence_pack(db, match_id, HUB)
    assert first.startswith(b"%PDF") and first == second
    text = pdf_text(first)
    assert "01/5/26" in text and "TW-EVID" in text and "Witness statement" in text
    assert "A1" in text  # the labelled positions table
    actions = list(db.scalars(select(AuditEntry.action)))
    assert actions.count("crime.evidence.export") == 2


def test_the_map_has_scale_and_north(db: Session, make_wearer, add_fixes) -> None:  # type: ignore[no-untyped-def]
    match_id = _matched(db, make_wearer, add_fixes)
    service.review_match(db, match_id, HUB, "qualified", "Passed the scene")
    data = evidence.evidence_data(db, match_id, HUB)
    drawing = evidence.draw_map(data)
    texts = [getattr(s, "text", "") for s in drawing.contents]
    assert "N" in texts and any(t.endswith(" m") for t in texts)
    assert sum(1 for t in texts if t.startswith("A")) == data.record.match.fixes_in_radius


def _docx_text(docx: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(docx)) as archive:
        return re.sub(r"<[^>]+>", " ", archive.read("word/document.xml").decode())


def test_the_word_pack_says_what_the_pdf_says_and_is_reproducible(
    db: Session, make_wearer, add_fixes
) -> None:  # type: ignore[no-untyped-def]
    match_id = _matched(db, make_wearer, add_fixes)
    service.review_match(db, match_id, HUB, "qualified", "Passed the scene")
    first = evidence.evidence_pack(db, match_id, HUB, fmt="docx")
    add_fixes(make_wearer("TW-LATE-DOCX"), [(5, 0.0, 0.0)])
    assert evidence.evidence_pack(db, match_id, HUB, fmt="docx") == first
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        core = archive.read("docProps/core.xml").decode()
        image = archive.read("word/media/image1.png")
    run = db.get(CrimeMatchRun, evidence.evidence_data(db, match_id, HUB).run.id)
    assert run is not None and f"{run.ended_at:%Y-%m-%dT%H:%M:%S}Z" in core
    assert image.startswith(b"\x89PNG")
    text = _docx_text(first)
    content = evidence.pack_content(evidence.evidence_data(db, match_id, HUB))
    for paragraph in [content.intro, *content.statement]:
        assert escape(paragraph, {"'": "&apos;"}) in text or escape(paragraph) in text
    for row in content.positions:
        assert all(cell in text for cell in row)
    with pytest.raises(service.CrimeError, match="format"):
        evidence.evidence_pack(db, match_id, HUB, fmt="odt")
    formats = [
        e.detail["format"]
        for e in db.scalars(select(AuditEntry).where(AuditEntry.action == "crime.evidence.export"))
    ]
    assert formats == ["docx", "docx"]


def test_the_map_image_is_the_drawing_in_pixels(db: Session, make_wearer, add_fixes) -> None:  # type: ignore[no-untyped-def]
    match_id = _matched(db, make_wearer, add_fixes)
    service.review_match(db, match_id, HUB, "qualified", "Passed the scene")
    drawing = evidence.draw_map(evidence.evidence_data(db, match_id, HUB))
    png = drawing_png(drawing)
    assert png == drawing_png(drawing)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    k = PIXELS_PER_POINT
    assert image.size == (round(drawing.width * k), round(drawing.height * k))
    # The crime at the centre is drawn in red; the corner is the white of the map.
    centre = image.getpixel((image.width // 2, image.height // 2))
    assert centre[0] > 180 and centre[1] < 120 and centre[2] < 120
    assert image.getpixel((image.width // 2, 30 * k)) == (255, 255, 255)
