"""Evidence packs: only for qualified matches, reproducible to the byte, audited."""

from __future__ import annotations

import base64
import datetime as dt
import re
import zlib

import pytest
from crime_scene import SCENE, T0
from sqlalchemy import select
from sqlalchemy.orm import Session

from tagwatch.access.models import AuditEntry
from tagwatch.access.principal import Principal
from tagwatch.crime import evidence, service

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
