"""A trail as the pages show and export it: fixes in time order, broken where data stops.

Two consecutive fixes further apart than `GAP` are not joined, so a gap in the data is drawn
(and exported) as a gap, never as a straight line through where the person might have been.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
from numpy.typing import NDArray

GAP = dt.timedelta(minutes=10)
GAP_MS = int(GAP.total_seconds() * 1000)


@dataclass(frozen=True)
class Trail:
    """One person's fixes in a period, columns sorted by time (epoch ms, WGS84, metres)."""

    person_ref: str
    start: dt.datetime
    end: dt.datetime
    t_ms: NDArray[np.int64]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    accuracy_m: NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.t_ms.shape[0])

    def runs(self) -> list[slice]:
        """Index ranges of the unbroken stretches of track."""
        if len(self) == 0:
            return []
        breaks = np.flatnonzero(np.diff(self.t_ms) > GAP_MS) + 1
        edges = [0, *breaks.tolist(), len(self)]
        return [slice(a, b) for a, b in itertools.pairwise(edges)]

    def gaps(self) -> list[tuple[dt.datetime, dt.datetime]]:
        """(last fix before, first fix after) each gap."""
        runs = self.runs()
        return [
            (_time(int(self.t_ms[a.stop - 1])), _time(int(self.t_ms[b.start])))
            for a, b in itertools.pairwise(runs)
        ]

    def player_points(self) -> list[list[float]]:
        """[t_ms, lat, lon, accuracy_m] rows for the browser's trail player."""
        return [
            [int(t), round(float(la), 7), round(float(lo), 7), round(float(acc), 1)]
            for t, la, lo, acc in zip(self.t_ms, self.lat, self.lon, self.accuracy_m, strict=True)
        ]


def _time(t_ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC)


def _iso(t_ms: int) -> str:
    return _time(t_ms).isoformat(timespec="seconds").replace("+00:00", "Z")


EXPORT_FORMATS: dict[str, tuple[str, str]] = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "geojson": ("application/geo+json", "geojson"),
    "kml": ("application/vnd.google-earth.kml+xml", "kml"),
}


def export(trail: Trail, fmt: str) -> str:
    if fmt == "csv":
        return to_csv(trail)
    if fmt == "geojson":
        return json.dumps(to_geojson(trail), separators=(",", ":"))
    if fmt == "kml":
        return to_kml(trail)
    raise ValueError(f"format: must be one of {', '.join(EXPORT_FORMATS)}, not {fmt!r}")


def to_csv(trail: Trail) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["person_ref", "time", "lat", "lon", "accuracy_m", "segment"])
    for segment, run in enumerate(trail.runs(), start=1):
        for i in range(run.start, run.stop):
            writer.writerow(
                [
                    trail.person_ref,
                    _iso(int(trail.t_ms[i])),
                    f"{trail.lat[i]:.7f}",
                    f"{trail.lon[i]:.7f}",
                    f"{trail.accuracy_m[i]:.1f}",
                    segment,
                ]
            )
    return out.getvalue()


def to_geojson(trail: Trail) -> dict[str, Any]:
    """One LineString feature per unbroken stretch, then one Point per fix."""
    features: list[dict[str, Any]] = []
    for segment, run in enumerate(trail.runs(), start=1):
        coordinates = [
            [round(float(lo), 7), round(float(la), 7)]
            for la, lo in zip(trail.lat[run], trail.lon[run], strict=True)
        ]
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": coordinates}
                if len(coordinates) > 1
                else {"type": "Point", "coordinates": coordinates[0]},
                "properties": {
                    "kind": "track",
                    "segment": segment,
                    "start": _iso(int(trail.t_ms[run.start])),
                    "end": _iso(int(trail.t_ms[run.stop - 1])),
                },
            }
        )
    for i in range(len(trail)):
        features.append(
            {
                "type": "Feature",
                "geometry": {
                    "type": "Point",
                    "coordinates": [round(float(trail.lon[i]), 7), round(float(trail.lat[i]), 7)],
                },
                "properties": {
                    "kind": "fix",
                    "time": _iso(int(trail.t_ms[i])),
                    "accuracy_m": round(float(trail.accuracy_m[i]), 1),
                },
            }
        )
    return {
        "type": "FeatureCollection",
        "properties": {
            "person_ref": trail.person_ref,
            "start": trail.start.isoformat(),
            "end": trail.end.isoformat(),
        },
        "features": features,
    }


def to_kml(trail: Trail) -> str:
    name = escape(f"{trail.person_ref} {trail.start:%Y-%m-%d %H:%M} to {trail.end:%Y-%m-%d %H:%M}")
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<kml xmlns="http://www.opengis.net/kml/2.2">',
        f"<Document><name>{name}</name>",
    ]
    for segment, run in enumerate(trail.runs(), start=1):
        coordinates = " ".join(
            f"{lo:.7f},{la:.7f}" for la, lo in zip(trail.lat[run], trail.lon[run], strict=True)
        )
        geometry = "LineString" if run.stop - run.start > 1 else "Point"
        parts.append(
            f"<Placemark><name>Segment {segment}</name>"
            f"<TimeSpan><begin>{_iso(int(trail.t_ms[run.start]))}</begin>"
            f"<end>{_iso(int(trail.t_ms[run.stop - 1]))}</end></TimeSpan>"
            f"<{geometry}><coordinates>{coordinates}</coordinates></{geometry}></Placemark>"
        )
    for i in range(len(trail)):
        parts.append(
            f"<Placemark><TimeStamp><when>{_iso(int(trail.t_ms[i]))}</when></TimeStamp>"
            f"<description>accuracy {trail.accuracy_m[i]:.1f} m</description>"
            f"<Point><coordinates>{trail.lon[i]:.7f},{trail.lat[i]:.7f}</coordinates></Point>"
            "</Placemark>"
        )
    parts.append("</Document></kml>")
    return "\n".join(parts) + "\n"
