"""The files that answer an approved request: the portal's CSV, GeoJSON and KML trail formats,
plus a PDF summary with a map of the track on the national grid."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray
from reportlab.graphics.shapes import Circle, Drawing, Line, Polygon, PolyLine, String
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from tagwatch.geo.projection import to_bng
from tagwatch.web.portal.trails import EXPORT_FORMATS, Trail, export

LONDON = ZoneInfo("Europe/London")
MAP_SIZE = 170 * mm
# Points drawn per unbroken stretch on the PDF map; the exports carry every fix.
MAP_POINTS_PER_RUN = 2000
FORMATS: dict[str, tuple[str, str]] = {
    **EXPORT_FORMATS,
    "pdf": ("application/pdf", "pdf"),
}


@dataclass(frozen=True)
class ExportFile:
    format: str
    filename: str
    media_type: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class SummaryHeading:
    """What the PDF says about the request the data answers."""

    request_id: int
    purpose: str
    lawful_basis: str
    crime_reference: str | None
    requested_by: str
    approved_by: str
    approved_at: dt.datetime


def export_files(trail: Trail, heading: SummaryHeading) -> list[ExportFile]:
    """Every format of one trail, named after the person, the period and the request."""
    stem = (
        f"request-{heading.request_id}-{trail.person_ref}-"
        f"{trail.start:%Y%m%dT%H%M}Z-{trail.end:%Y%m%dT%H%M}Z"
    )
    files = [
        ExportFile(fmt, f"{stem}.{ext}", media, export(trail, fmt).encode("utf-8"))
        for fmt, (media, ext) in EXPORT_FORMATS.items()
    ]
    files.append(ExportFile("pdf", f"{stem}.pdf", FORMATS["pdf"][0], summary_pdf(trail, heading)))
    return files


# --- the map ---------------------------------------------------------------------------------


def _nice_length(metres: float) -> float:
    """A round length near a fifth of the map's width, for the scale bar."""
    target = max(metres / 5, 1.0)
    power = 10 ** math.floor(math.log10(target))
    return float(max(m * power for m in (1, 2, 5) if m * power <= target))


def _thinned(n: int) -> NDArray[np.int64]:
    """Indices of at most MAP_POINTS_PER_RUN points spread along a run, ends included."""
    if n <= MAP_POINTS_PER_RUN:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, MAP_POINTS_PER_RUN).round().astype(np.int64))


@dataclass(frozen=True)
class MapFrame:
    """Where national grid metres land on a map drawing: its centre and points per metre."""

    centre_e: float
    centre_n: float
    scale: float
    size: float

    def at(self, easting: float, northing: float) -> tuple[float, float]:
        return (
            self.size / 2 + (easting - self.centre_e) * self.scale,
            self.size / 2 + (northing - self.centre_n) * self.scale,
        )


def draw_track_map(
    easting: NDArray[np.float64],
    northing: NDArray[np.float64],
    runs: list[slice],
    size: float = MAP_SIZE,
    *,
    extent: tuple[float, float, float, float] | None = None,
    overlay: Callable[[Drawing, MapFrame], None] | None = None,
) -> Drawing:
    """A track on the British National Grid, north up: one line per unbroken stretch (gaps
    left open), start and end marked, a scale bar and a north arrow.

    `extent` (min easting, min northing, max easting, max northing) is an area the map must
    show besides the track; `overlay` draws more on the map (under the scale bar and arrow).
    """
    drawing = Drawing(size, size)
    drawing.add(
        Polygon(
            [0, 0, size, 0, size, size, 0, size],
            fillColor=colors.white,
            strokeColor=colors.black,
            strokeWidth=0.5,
        )
    )
    if easting.shape[0] == 0:
        drawing.add(String(size / 2 - 40, size / 2, "No positions in the period", fontSize=9))
        return drawing
    e0, e1 = float(easting.min()), float(easting.max())
    n0, n1 = float(northing.min()), float(northing.max())
    if extent is not None:
        e0, n0 = min(e0, extent[0]), min(n0, extent[1])
        e1, n1 = max(e1, extent[2]), max(n1, extent[3])
    cx, cy = (e0 + e1) / 2, (n0 + n1) / 2
    half = max(e1 - e0, n1 - n0, 200.0) / 2 * 1.15
    scale = size / (2 * half)
    px = size / 2 + (easting - cx) * scale
    py = size / 2 + (northing - cy) * scale
    for run in runs:
        xs, ys = px[run], py[run]
        keep = _thinned(xs.shape[0])
        if keep.shape[0] == 1:
            drawing.add(Circle(float(xs[0]), float(ys[0]), 1, fillColor=colors.blue))
            continue
        points = np.column_stack((xs[keep], ys[keep])).ravel().tolist()
        drawing.add(PolyLine(points, strokeColor=colors.blue, strokeWidth=0.6))
    drawing.add(Circle(float(px[0]), float(py[0]), 3, fillColor=colors.green))
    drawing.add(Circle(float(px[-1]), float(py[-1]), 3, fillColor=colors.red))
    if overlay is not None:
        overlay(drawing, MapFrame(cx, cy, scale, size))
    bar = _nice_length(2 * half)
    drawing.add(Line(8, 8, 8 + bar * scale, 8, strokeColor=colors.black, strokeWidth=2))
    drawing.add(String(8, 12, f"{bar:g} m", fontSize=7))
    nx, ny = size - 14, size - 30
    drawing.add(Polygon([nx, ny + 18, nx - 5, ny, nx + 5, ny], fillColor=colors.black))
    drawing.add(String(nx - 3, ny + 21, "N", fontSize=8))
    drawing.add(
        String(8, size - 12, "British National Grid (EPSG:27700), grid north up", fontSize=6)
    )
    return drawing


# --- the summary -----------------------------------------------------------------------------


def _london(moment: dt.datetime) -> str:
    return moment.astimezone(LONDON).strftime("%d/%m/%Y %H:%M:%S %Z")


def _from_ms(t_ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC)


def summary_pdf(trail: Trail, heading: SummaryHeading) -> bytes:
    styles = getSampleStyleSheet()
    body, subhead = styles["BodyText"], styles["Heading2"]
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        invariant=1,
        title=f"Location data request {heading.request_id}",
        author="tagwatch location data requests",
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
    )
    n = len(trail)
    easting, northing = to_bng(trail.lon, trail.lat)
    coverage = (
        f"{n} recorded position(s), the first at {_london(_from_ms(int(trail.t_ms[0])))} "
        f"and the last at {_london(_from_ms(int(trail.t_ms[-1])))}."
        if n
        else "No recorded positions in the period."
    )
    gaps = trail.gaps()
    story: list[object] = [
        Paragraph(f"Location data request {heading.request_id}", styles["Title"]),
        Paragraph(
            f"Person {trail.person_ref}, from {_london(trail.start)} to {_london(trail.end)}.",
            body,
        ),
        Paragraph(
            f"Purpose: {_text(heading.purpose)}. Lawful basis: {_text(heading.lawful_basis)}."
            + (
                f" Crime reference {_text(heading.crime_reference)}."
                if heading.crime_reference
                else ""
            ),
            body,
        ),
        Paragraph(
            f"Requested by {_text(heading.requested_by)}; approved by "
            f"{_text(heading.approved_by)} at {_london(heading.approved_at)}.",
            body,
        ),
        Spacer(1, 4 * mm),
        draw_track_map(easting, northing, trail.runs()),
        Paragraph("Coverage", subhead),
        Paragraph(
            f"{coverage} Positions more than 10 minutes apart are not joined: the map and "
            f"the files show {len(gaps)} gap(s) in the data as gaps. Positions judged "
            "implausible on arrival are left out. The accompanying CSV, GeoJSON and KML "
            "files carry every position with its reported accuracy.",
            body,
        ),
    ]
    if gaps:
        rows = [["Last position before", "First position after", "Length"]]
        for before, after in gaps[:40]:
            rows.append([_london(before), _london(after), str(after - before)])
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
        story += [Paragraph("Gaps in the data", subhead), table]
        if len(gaps) > 40:
            story.append(Paragraph(f"and {len(gaps) - 40} more (see the CSV segments).", body))
    doc.build(story)
    return buffer.getvalue()


def _text(value: str | None) -> str:
    """Free text made safe for reportlab's paragraph mark-up."""
    return (value or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
