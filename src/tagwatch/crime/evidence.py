"""Evidence pack for a qualified match: a PDF with a map drawn here (no map tiles), the
positions, the parameters of the run, coverage and accuracy caveats and a witness statement.

The same run gives the same bytes: the PDF is written in reportlab's invariant mode (fixed
creation date and document id) and everything in it comes from stored, append-only data.
"""

from __future__ import annotations

import datetime as dt
import io
import math
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
from reportlab.graphics.shapes import Circle, Drawing, Line, Polygon, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlalchemy.orm import Session

from tagwatch.access import audit
from tagwatch.access.principal import Principal
from tagwatch.crime import repository as repo
from tagwatch.crime.service import CrimeError, NotFound, person_tracks
from tagwatch.telemetry.epoch import from_ms
from tagwatch.telemetry.repository import FixTable, load_fixes

LONDON = ZoneInfo("Europe/London")
MAP_SIZE = 160 * mm


@dataclass(frozen=True)
class TrackPoint:
    t: dt.datetime
    x: float
    y: float
    accuracy_m: float
    joined_to_next: bool
    label: str


@dataclass(frozen=True)
class EvidenceData:
    record: repo.MatchRecord
    run_radius_m: float
    run_tolerance_s: float
    run_max_gap_s: float
    algorithm_version: str
    run_id: int
    max_record_id: int
    crime_x: float
    crime_y: float
    window: tuple[dt.datetime, dt.datetime]
    track: list[TrackPoint]


def evidence_data(session: Session, match_id: int, principal: Principal | None) -> EvidenceData:
    record = repo.get_match(session, match_id, principal)
    if record is None:
        raise NotFound(f"crime match {match_id}")
    if record.match.review_state != "qualified":
        raise CrimeError("review_state", "an evidence pack is made for qualified matches only")
    run = repo.get_run(session, record.match.run_id)
    assert run is not None  # a match always belongs to a run
    _, allocations = repo.person_allocations(session, record.match.person_ref)
    version = record.version
    tolerance = dt.timedelta(seconds=run.tolerance_s)
    gap = dt.timedelta(seconds=run.max_gap_s)
    w0, w1 = version.t_from - tolerance, version.t_to + tolerance
    fixes = load_fixes(session, start=w0 - gap, end=w1 + gap, allocation_ids=allocations)
    keep = fixes.record_id <= run.max_record_id  # the run's snapshot, not later arrivals
    fixes = FixTable(
        *(
            getattr(fixes, f)[keep]
            for f in ("record_id", "allocation_id", "t_ms", "lat", "lon", "accuracy_m")
        )
    )
    tracks = person_tracks(session, fixes)
    labels = {p.record_id: p.label for p in repo.positions(session, match_id)}
    t = tracks.tracks.t_ms
    joined = np.zeros(len(t), dtype=bool)
    if len(t) > 1:
        joined[:-1] = np.diff(t) <= run.max_gap_s * 1000
    points = [
        TrackPoint(
            from_ms(int(t[i])),
            float(tracks.tracks.x[i]),
            float(tracks.tracks.y[i]),
            float(tracks.tracks.accuracy_m[i]),
            bool(joined[i]),
            labels.get(int(tracks.record_id[i]), ""),
        )
        for i in range(len(t))
    ]
    return EvidenceData(
        record,
        run.radius_m,
        run.tolerance_s,
        run.max_gap_s,
        run.algorithm_version,
        run.id,
        run.max_record_id,
        version.easting,
        version.northing,
        (w0, w1),
        points,
    )


# --- the map ---------------------------------------------------------------------------------


def _nice_scale(metres: float) -> float:
    """A round length near a fifth of the map's width for the scale bar."""
    target = metres / 5
    power = 10 ** math.floor(math.log10(target))
    return float(max(m * power for m in (1, 2, 5) if m * power <= target))


def draw_map(data: EvidenceData) -> Drawing:
    """The crime, its radius, the track in the window with times and accuracy circles, a scale
    bar and a north arrow, on the national grid (north up, metres)."""
    size = MAP_SIZE
    drawing = Drawing(size, size)
    xs = [data.crime_x] + [p.x for p in data.track]
    ys = [data.crime_y] + [p.y for p in data.track]
    half = max(
        data.run_radius_m * 2.0,
        max(abs(x - data.crime_x) for x in xs) * 1.1,
        max(abs(y - data.crime_y) for y in ys) * 1.1,
    )
    scale = size / (2 * half)

    def at(x: float, y: float) -> tuple[float, float]:
        return size / 2 + (x - data.crime_x) * scale, size / 2 + (y - data.crime_y) * scale

    drawing.add(
        Polygon(
            [0, 0, size, 0, size, size, 0, size],
            fillColor=colors.white,
            strokeColor=colors.black,
            strokeWidth=0.5,
        )
    )
    cx, cy = at(data.crime_x, data.crime_y)
    drawing.add(
        Circle(
            cx,
            cy,
            data.run_radius_m * scale,
            fillColor=colors.Color(1, 0, 0, 0.08),
            strokeColor=colors.red,
            strokeWidth=1,
        )
    )
    drawing.add(Circle(cx, cy, 3, fillColor=colors.red, strokeColor=colors.red))
    for a, b in zip(data.track, data.track[1:], strict=False):
        if a.joined_to_next:
            x0, y0 = at(a.x, a.y)
            x1, y1 = at(b.x, b.y)
            drawing.add(Line(x0, y0, x1, y1, strokeColor=colors.blue, strokeWidth=1))
    for p in data.track:
        px, py = at(p.x, p.y)
        drawing.add(
            Circle(
                px,
                py,
                max(p.accuracy_m * scale, 0.5),
                fillColor=None,
                strokeColor=colors.grey,
                strokeWidth=0.3,
                strokeDashArray=[2, 2],
            )
        )
        inside = bool(p.label)
        drawing.add(
            Circle(
                px,
                py,
                2,
                fillColor=colors.darkblue if inside else colors.lightblue,
                strokeColor=colors.darkblue,
                strokeWidth=0.3,
            )
        )
        text = f"{p.label} " if p.label else ""
        text += p.t.astimezone(LONDON).strftime("%H:%M:%S")
        drawing.add(String(px + 3, py + 3, text, fontSize=5, fillColor=colors.black))

    bar = _nice_scale(2 * half)
    drawing.add(Line(8, 8, 8 + bar * scale, 8, strokeColor=colors.black, strokeWidth=2))
    drawing.add(String(8, 12, f"{bar:g} m", fontSize=7))
    nx, ny = size - 14, size - 30
    drawing.add(Polygon([nx, ny + 18, nx - 5, ny, nx + 5, ny], fillColor=colors.black))
    drawing.add(String(nx - 3, ny + 21, "N", fontSize=8))
    drawing.add(
        String(8, size - 12, "British National Grid (EPSG:27700), grid north up", fontSize=6)
    )
    return drawing


# --- the document ----------------------------------------------------------------------------


def _london(moment: dt.datetime) -> str:
    return moment.astimezone(LONDON).strftime("%d/%m/%Y %H:%M:%S %Z")


def render_pdf(data: EvidenceData) -> bytes:
    m, v, c, b = data.record.match, data.record.version, data.record.crime, data.record.batch
    styles = getSampleStyleSheet()
    body, heading = styles["BodyText"], styles["Heading2"]
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        invariant=1,
        title=f"Crime match evidence {c.crime_ref} {m.person_ref}",
        author="tagwatch crime mapping",
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
    )
    story: list[object] = [
        Paragraph(f"Crime match evidence pack: {c.crime_ref}", styles["Title"]),
        Paragraph(
            f"Force {c.force_code}, batch {b.batch_ref}, crime type {v.crime_type}. "
            f"Crime window {_london(v.t_from)} to {_london(v.t_to)}. "
            f"Person {m.person_ref}, device {m.device_serial}.",
            body,
        ),
        Spacer(1, 4 * mm),
        draw_map(data),
        Paragraph("Summary", heading),
        Paragraph(
            f"Closest approach {m.closest_distance_m:.1f} m at {_london(m.closest_time)}. "
            f"Within {data.run_radius_m:g} m from {_london(m.first_time_in_radius)} "
            f"to {_london(m.last_time_in_radius)}, in {m.passes} separate pass(es), "
            f"with {m.fixes_in_radius} recorded position(s) inside the radius.",
            body,
        ),
        Paragraph("Parameters", heading),
        Paragraph(
            f"Radius {data.run_radius_m:g} m; window tolerance {data.run_tolerance_s:g} s; "
            f"positions joined when at most {data.run_max_gap_s:g} s apart. "
            f"Algorithm {data.algorithm_version}, run {data.run_id}, positions up to record "
            f"{data.max_record_id}. Distances are measured on the British National Grid.",
            body,
        ),
        Paragraph("Coverage and accuracy", heading),
        Paragraph(
            f"The track covers {m.coverage_pct:.1f}% of the crime window; the rest had no "
            "joined positions (gaps over the join limit count as not covered, and a lone "
            "position covers no time). Between positions the route is assumed straight and "
            "the speed steady, which the person's real path need not follow. The worst "
            f"reported accuracy of the positions carrying the track was "
            f"{'unknown' if m.max_accuracy_m is None else f'{m.max_accuracy_m:.0f} m'}; "
            "dashed circles on the map show each position's reported accuracy.",
            body,
        ),
        PageBreak(),
        Paragraph("Positions", heading),
    ]
    rows = [["Label", "Time (UK)", "Easting", "Northing", "Accuracy (m)"]]
    for p in data.track:
        rows.append([p.label, _london(p.t), f"{p.x:.1f}", f"{p.y:.1f}", f"{p.accuracy_m:.0f}"])
    table = Table(rows, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONTSIZE", (0, 0), (-1, -1), 7),
                ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ]
        )
    )
    story += [
        table,
        Paragraph(
            "Labels: a letter per pass through the radius, a number per position in it, in "
            "time order. Consecutive numbers need not mean continuous movement: read the times.",
            body,
        ),
        PageBreak(),
        Paragraph("Witness statement", heading),
        Paragraph(
            "(Criminal Justice Act 1967, s.9; Magistrates' Courts Act 1980, s.5B; "
            "Criminal Procedure Rules 2020, r.16.2)",
            body,
        ),
        Paragraph(
            "This statement, consisting of this page, is true to the best of my knowledge and "
            "belief and I make it knowing that, if it is tendered in evidence, I shall be liable "
            "to prosecution if I have wilfully stated in it anything which I know to be false, "
            "or do not believe to be true.",
            body,
        ),
        Paragraph(
            f"I have examined the electronic monitoring records of person {m.person_ref} "
            f"(device {m.device_serial}) against crime {c.crime_ref} reported by "
            f"{c.force_code}. The records place the device within {data.run_radius_m:g} metres "
            f"of the crime location between {_london(m.first_time_in_radius)} and "
            f"{_london(m.last_time_in_radius)}, closest ({m.closest_distance_m:.0f} m) at "
            f"{_london(m.closest_time)}. The positions are produced as exhibit EMC/01.",
            body,
        ),
        Spacer(1, 12 * mm),
        Paragraph("Name: ______________________  Role: ______________________", body),
        Paragraph("Signature: __________________  Date: ______________________", body),
        Paragraph(
            f"Qualified by {m.reviewed_by or '-'}; "
            + (f"authorised by {m.authorised_by}." if m.authorised_by else "not yet authorised."),
            body,
        ),
    ]
    doc.build(story)
    return buffer.getvalue()


def evidence_pack(
    session: Session, match_id: int, principal: Principal | None, *, purpose: str | None = None
) -> bytes:
    """The PDF pack of a qualified match, audited as an export of location data."""
    data = evidence_data(session, match_id, principal)
    pdf = render_pdf(data)
    audit.record(
        session,
        principal,
        "crime.evidence.export",
        subject_type="crime_match",
        subject_id=match_id,
        purpose=purpose,
        detail={"person": data.record.match.person_ref, "positions": len(data.track)},
    )
    return pdf
