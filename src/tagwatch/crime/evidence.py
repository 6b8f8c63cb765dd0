"""The evidence of a match: the person's track around the crime as the run saw it, shown on the
match page and written into the evidence pack (PDF, or DOCX to edit) with a map drawn here.

The same run gives the same pack: everything comes from stored, append-only data read up to
the run's last record id (fixes that arrive later are not in it); the PDF is written in
reportlab's invariant mode and the DOCX with fixed timestamps (`evidence_docx.py`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import itertools
import math
from dataclasses import dataclass
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

import numpy as np
from reportlab.graphics.shapes import Circle, Drawing, Line, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from sqlalchemy.orm import Session

from tagwatch.access import audit
from tagwatch.access.principal import Principal
from tagwatch.crime import repository as repo
from tagwatch.crime.evidence_docx import docx_document
from tagwatch.crime.map_image import drawing_png
from tagwatch.crime.matcher import CrimeSet, MatchParams, where_was
from tagwatch.crime.models import CrimeMatchRun
from tagwatch.crime.service import CrimeError, NotFound, person_tracks
from tagwatch.geo.projection import to_bng
from tagwatch.requests.exports import MapFrame, draw_track_map
from tagwatch.telemetry.epoch import from_ms, to_ms
from tagwatch.telemetry.repository import FixTable, load_fixes

LONDON = ZoneInfo("Europe/London")
MAP_SIZE = 160 * mm
# Beyond this many positions only the labelled ones carry their time on the map.
TIMED_POSITIONS = 60
PACK_FORMATS: dict[str, str] = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
_FIX_FIELDS = tuple(f.name for f in dataclasses.fields(FixTable))


@dataclass(frozen=True)
class TrackPoint:
    """One recorded position carrying the track through the crime window."""

    record_id: int
    t: dt.datetime
    x: float  # easting, m
    y: float  # northing, m
    latitude: float
    longitude: float
    accuracy_m: float
    distance_m: float  # to the crime
    joined_to_next: bool  # the next position is within the run's max gap
    window: str  # before, in, after (the window with its tolerance)
    label: str  # A1, A2, B1 ... for positions inside the radius, else ""


@dataclass(frozen=True)
class PassSummary:
    letter: str
    labels: list[str]
    first: dt.datetime | None
    last: dt.datetime | None


@dataclass(frozen=True)
class MatchEvidence:
    record: repo.MatchRecord
    run: CrimeMatchRun
    crime_x: float
    crime_y: float
    window: tuple[dt.datetime, dt.datetime]
    track: list[TrackPoint]
    uncovered: list[tuple[dt.datetime, dt.datetime]]

    @property
    def passes(self) -> list[PassSummary]:
        """Each pass through the radius with its positions; a pass between positions has none."""
        by_letter: dict[str, list[TrackPoint]] = {}
        for p in self.track:
            if p.label:
                by_letter.setdefault(p.label.rstrip("0123456789"), []).append(p)
        return [
            PassSummary(letter, [p.label for p in points], points[0].t, points[-1].t)
            for letter, points in by_letter.items()
        ]


def load_evidence(session: Session, match_id: int, principal: Principal | None) -> MatchEvidence:
    """The match (within the caller's scope) and its track in the run's snapshot."""
    record = repo.get_match(session, match_id, principal)
    if record is None:
        raise NotFound(f"crime match {match_id}")
    run = repo.get_run(session, record.match.run_id)
    assert run is not None  # a match always belongs to a run
    _, allocations = repo.person_allocations(session, record.match.person_ref)
    version = record.version
    tolerance = dt.timedelta(seconds=run.tolerance_s)
    gap = dt.timedelta(seconds=run.max_gap_s)
    w0, w1 = version.t_from - tolerance, version.t_to + tolerance
    fixes = load_fixes(session, start=w0 - gap, end=w1 + gap, allocation_ids=allocations)
    keep = fixes.record_id <= run.max_record_id  # the run's snapshot, not later arrivals
    fixes = FixTable(*(getattr(fixes, name)[keep] for name in _FIX_FIELDS))
    people = person_tracks(session, fixes)
    tracks = people.tracks
    labels = {p.record_id: p.label for p in repo.positions(session, match_id)}
    t = tracks.t_ms
    joined = np.zeros(len(t), dtype=bool)
    if len(t) > 1:
        joined[:-1] = np.diff(t) <= run.max_gap_s * 1000
    w0_ms, w1_ms = to_ms(w0), to_ms(w1)
    points = [
        TrackPoint(
            record_id=int(people.record_id[i]),
            t=from_ms(int(t[i])),
            x=float(tracks.x[i]),
            y=float(tracks.y[i]),
            latitude=float(people.lat[i]),
            longitude=float(people.lon[i]),
            accuracy_m=float(tracks.accuracy_m[i]),
            distance_m=math.hypot(
                float(tracks.x[i]) - version.easting, float(tracks.y[i]) - version.northing
            ),
            joined_to_next=bool(joined[i]),
            window="before" if t[i] < w0_ms else "after" if t[i] > w1_ms else "in",
            label=labels.get(int(people.record_id[i]), ""),
        )
        for i in range(len(t))
    ]
    # The matcher's own account of which parts of the window the track does not cover.
    crime = CrimeSet(
        np.array([version.id], dtype=np.int64),
        np.array([version.easting]),
        np.array([version.northing]),
        np.array([to_ms(version.t_from)], dtype=np.int64),
        np.array([to_ms(version.t_to)], dtype=np.int64),
    )
    answer = where_was(tracks, crime, MatchParams(run.radius_m, run.tolerance_s, run.max_gap_s))
    uncovered = [(from_ms(round(a)), from_ms(round(b))) for a, b in answer.uncovered]
    return MatchEvidence(
        record, run, version.easting, version.northing, (w0, w1), points, uncovered
    )


def view_match(
    session: Session, match_id: int, principal: Principal | None, *, purpose: str | None = None
) -> MatchEvidence:
    """The match page's data. Seeing the track is seeing location data: it is audited."""
    data = load_evidence(session, match_id, principal)
    audit.record(
        session,
        principal,
        "crime.match.track_view",
        subject_type="crime_match",
        subject_id=match_id,
        purpose=purpose,
        detail={
            "person": data.record.match.person_ref,
            "crime": data.record.crime.crime_ref,
            "run": data.run.id,
            "positions": len(data.track),
        },
    )
    return data


def evidence_data(session: Session, match_id: int, principal: Principal | None) -> MatchEvidence:
    """The evidence of a qualified match; any other is refused."""
    data = load_evidence(session, match_id, principal)
    if data.record.match.review_state != "qualified":
        raise CrimeError("review_state", "an evidence pack is made for qualified matches only")
    return data


# --- the map ---------------------------------------------------------------------------------


def _uk_time(moment: dt.datetime) -> str:
    return moment.astimezone(LONDON).strftime("%H:%M:%S")


def draw_map(data: MatchEvidence, size: float = MAP_SIZE) -> Drawing:
    """The crime, its radius, the track with times and dashed accuracy circles, the closest
    approach, a scale bar and a north arrow, on the national grid (north up, metres)."""
    east = np.array([p.x for p in data.track], dtype=np.float64)
    north = np.array([p.y for p in data.track], dtype=np.float64)
    breaks = [i + 1 for i, p in enumerate(data.track[:-1]) if not p.joined_to_next]
    edges = [0, *breaks, len(data.track)]
    runs = [slice(a, b) for a, b in itertools.pairwise(edges) if b > a]
    reach = data.run.radius_m * 1.3
    extent = (
        data.crime_x - reach,
        data.crime_y - reach,
        data.crime_x + reach,
        data.crime_y + reach,
    )
    match = data.record.match
    timed_all = len(data.track) <= TIMED_POSITIONS

    def overlay(drawing: Drawing, frame: MapFrame) -> None:
        cx, cy = frame.at(data.crime_x, data.crime_y)
        drawing.add(
            Circle(
                cx,
                cy,
                data.run.radius_m * frame.scale,
                fillColor=colors.Color(1, 0, 0, 0.08),
                strokeColor=colors.red,
                strokeWidth=1,
            )
        )
        last = len(data.track) - 1
        for i, p in enumerate(data.track):
            px, py = frame.at(p.x, p.y)
            drawing.add(
                Circle(
                    px,
                    py,
                    max(p.accuracy_m * frame.scale, 0.5),
                    fillColor=None,
                    strokeColor=colors.grey,
                    strokeWidth=0.3,
                    strokeDashArray=[2, 2],
                )
            )
            if p.label or i not in (0, last):  # the first and last keep their end marks
                drawing.add(
                    Circle(
                        px,
                        py,
                        2,
                        fillColor=colors.darkblue if p.label else colors.lightblue,
                        strokeColor=colors.darkblue,
                        strokeWidth=0.3,
                    )
                )
            if p.label or timed_all:
                text = f"{p.label} {_uk_time(p.t)}" if p.label else _uk_time(p.t)
                drawing.add(String(px + 3, py + 3, text, fontSize=5, fillColor=colors.black))
        # The crime as a cross, so it is not taken for the track's red end mark.
        for dx, dy in ((-4, -4), (-4, 4)):
            drawing.add(
                Line(cx + dx, cy + dy, cx - dx, cy - dy, strokeColor=colors.red, strokeWidth=1.5)
            )
        drawing.add(String(cx + 5, cy - 9, "Crime", fontSize=6, fillColor=colors.red))
        closest = _closest_xy(data)
        qx, qy = frame.at(*closest)
        drawing.add(Circle(qx, qy, 4, fillColor=None, strokeColor=colors.black, strokeWidth=1))
        drawing.add(
            String(
                qx + 5,
                qy - 9,
                f"Closest {match.closest_distance_m:.0f} m {_uk_time(match.closest_time)}",
                fontSize=5,
                fillColor=colors.black,
            )
        )

    return draw_track_map(east, north, runs, size, extent=extent, overlay=overlay)


def _closest_xy(data: MatchEvidence) -> tuple[float, float]:
    """The closest approach on the national grid (it may fall between positions)."""
    match = data.record.match
    x, y = to_bng(np.array([match.closest_longitude]), np.array([match.closest_latitude]))
    return float(x[0]), float(y[0])


# --- what the pack says, for either format -----------------------------------------------------


def _london(moment: dt.datetime) -> str:
    return moment.astimezone(LONDON).strftime("%d/%m/%Y %H:%M:%S %Z")


@dataclass(frozen=True)
class PackContent:
    title: str
    intro: str
    map_note: str
    sections: list[tuple[str, list[str]]]
    positions_header: list[str]
    positions: list[list[str]]
    positions_note: str
    statement_heading: str
    statement: list[str]
    signature_lines: list[str]
    approvals: str


POSITIONS_HEADER = [
    "Label",
    "Time (UK)",
    "Window",
    "To crime (m)",
    "Accuracy (m)",
    "Easting",
    "Northing",
    "Latitude",
    "Longitude",
]


def pack_content(data: MatchEvidence) -> PackContent:
    m, v, c, b = data.record.match, data.record.version, data.record.crime, data.record.batch
    run = data.run
    worst = "unknown" if m.max_accuracy_m is None else f"{m.max_accuracy_m:.0f} m"
    passes = [
        (
            f"Pass {p.letter}: positions {', '.join(p.labels)}, "
            f"{_london(p.first)} to {_london(p.last)}."
            if p.first and p.last
            else f"Pass {p.letter}."
        )
        for p in data.passes
    ]
    if m.passes > len(data.passes):
        passes.append(
            f"{m.passes - len(data.passes)} pass(es) crossed the radius between recorded "
            "positions, with no position inside it (a missing letter in the table)."
        )
    gaps = [f"No track from {_london(a)} to {_london(b)}." for a, b in data.uncovered] or [
        "The track covers the whole window."
    ]
    sections = [
        (
            "Summary",
            [
                f"Closest approach {m.closest_distance_m:.1f} m at {_london(m.closest_time)}. "
                f"Within {run.radius_m:g} m from {_london(m.first_time_in_radius)} "
                f"to {_london(m.last_time_in_radius)}, in {m.passes} separate pass(es), "
                f"with {m.fixes_in_radius} recorded position(s) inside the radius.",
                *passes,
            ],
        ),
        (
            "Parameters",
            [
                f"Radius {run.radius_m:g} m; window tolerance {run.tolerance_s:g} s; "
                f"positions joined when at most {run.max_gap_s:g} s apart. "
                f"Algorithm {run.algorithm_version}, run {run.id} ({run.trigger}), positions "
                f"up to record {run.max_record_id}. Distances are measured on the British "
                "National Grid (EPSG:27700).",
            ],
        ),
        (
            "Coverage and accuracy",
            [
                f"The track covers {m.coverage_pct:.1f}% of the crime window "
                f"({_london(data.window[0])} to {_london(data.window[1])}); the rest had no "
                "joined positions (gaps over the join limit count as not covered, and a lone "
                "position covers no time). Between positions the route is assumed straight "
                "and the speed steady, which the person's real path need not follow.",
                *gaps,
                f"The worst reported accuracy of the positions carrying the track was {worst}; "
                "dashed circles on the map show each position's reported accuracy. Accuracy "
                "does not change whether a match is made; a position may lie anywhere within "
                "its circle.",
            ],
        ),
    ]
    positions = [
        [
            p.label,
            _london(p.t),
            p.window,
            f"{p.distance_m:.1f}",
            f"{p.accuracy_m:.0f}",
            f"{p.x:.1f}",
            f"{p.y:.1f}",
            f"{p.latitude:.6f}",
            f"{p.longitude:.6f}",
        ]
        for p in data.track
    ]
    statement = [
        "(Criminal Justice Act 1967, s.9; Magistrates' Courts Act 1980, s.5B; "
        "Criminal Procedure Rules 2020, r.16.2)",
        "This statement, consisting of this page, is true to the best of my knowledge and "
        "belief and I make it knowing that, if it is tendered in evidence, I shall be liable "
        "to prosecution if I have wilfully stated in it anything which I know to be false, "
        "or do not believe to be true.",
        f"I have examined the electronic monitoring records of person {m.person_ref} "
        f"(device {m.device_serial}) against crime {c.crime_ref} reported by {c.force_code}. "
        f"The records place the device within {run.radius_m:g} metres of the crime location "
        f"between {_london(m.first_time_in_radius)} and {_london(m.last_time_in_radius)}, "
        f"closest ({m.closest_distance_m:.0f} m) at {_london(m.closest_time)}. The positions "
        "are produced as exhibit EMC/01.",
    ]
    return PackContent(
        title=f"Crime match evidence pack: {c.crime_ref}",
        intro=(
            f"Force {c.force_code}, batch {b.batch_ref}, crime type {v.crime_type}. "
            f"Crime window {_london(v.t_from)} to {_london(v.t_to)}. "
            f"Person {m.person_ref}, device {m.device_serial}."
        ),
        map_note=(
            "Map: the crime (red cross) and the radius (red circle); the track in blue (breaks "
            "where positions were too far apart to join), its first position green and last "
            "red; dark dots are positions inside the radius with their labels; the black ring "
            "is the closest approach. Times are UK times."
        ),
        sections=sections,
        positions_header=POSITIONS_HEADER,
        positions=positions,
        positions_note=(
            "Labels: a letter per pass through the radius, a number per position in it, in "
            "time order. Consecutive numbers need not mean continuous movement: read the times. "
            "Window: whether the position is before, in or after the crime window (with its "
            "tolerance); positions just outside it carry the track to the window's ends."
        ),
        statement_heading="Witness statement",
        statement=statement,
        signature_lines=[
            "Name: ______________________  Role: ______________________",
            "Signature: __________________  Date: ______________________",
        ],
        approvals=f"Qualified by {m.reviewed_by or '-'}; "
        + (f"authorised by {m.authorised_by}." if m.authorised_by else "not yet authorised."),
    )


# --- the documents ------------------------------------------------------------------------------


def render_docx(data: MatchEvidence) -> bytes:
    """The pack as a Word document; its dates are the run's, so the same run gives the same
    bytes."""
    return docx_document(pack_content(data), drawing_png(draw_map(data)), data.run.ended_at)


# --- the PDF ---------------------------------------------------------------------------------


def render_pdf(data: MatchEvidence) -> bytes:
    content = pack_content(data)
    styles = getSampleStyleSheet()
    body, heading = styles["BodyText"], styles["Heading2"]
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        invariant=1,
        title=content.title,
        author="tagwatch crime mapping",
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
    )

    def para(text: str, style: object = body) -> Paragraph:
        return Paragraph(escape(text), style)

    story: list[object] = [
        para(content.title, styles["Title"]),
        para(content.intro),
        Spacer(1, 4 * mm),
        draw_map(data),
        para(content.map_note, styles["Italic"]),
    ]
    for title, paragraphs in content.sections:
        story += [para(title, heading), *(para(p) for p in paragraphs)]
    table = Table([content.positions_header, *content.positions], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONTSIZE", (0, 0), (-1, -1), 6.5),
                ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
            ]
        )
    )
    story += [
        PageBreak(),
        para("Positions", heading),
        table,
        para(content.positions_note),
        PageBreak(),
        para(content.statement_heading, heading),
        *(para(p) for p in content.statement),
        Spacer(1, 12 * mm),
        *(para(line) for line in content.signature_lines),
        para(content.approvals),
    ]
    doc.build(story)
    return buffer.getvalue()


def evidence_pack(
    session: Session,
    match_id: int,
    principal: Principal | None,
    *,
    fmt: str = "pdf",
    purpose: str | None = None,
) -> bytes:
    """The pack of a qualified match in `fmt` (pdf or docx), audited as an export of
    location data."""
    if fmt not in PACK_FORMATS:
        raise CrimeError("format", f"must be one of {', '.join(PACK_FORMATS)}")
    data = evidence_data(session, match_id, principal)
    document = render_docx(data) if fmt == "docx" else render_pdf(data)
    audit.record(
        session,
        principal,
        "crime.evidence.export",
        subject_type="crime_match",
        subject_id=match_id,
        purpose=purpose,
        detail={
            "person": data.record.match.person_ref,
            "positions": len(data.track),
            "format": fmt,
            "run": data.run.id,
        },
    )
    return document
