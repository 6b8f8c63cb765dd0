"""Trails break at gaps, and every export carries every fix in its segment."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json

import numpy as np
from defusedxml import ElementTree
from hypothesis import given
from hypothesis import strategies as st

from tagwatch.web.portal.trails import GAP_MS, Trail, export

START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
T0 = int(START.timestamp() * 1000)


def make_trail(offsets_ms: list[int]) -> Trail:
    t = np.array(sorted(T0 + o for o in offsets_ms), dtype=np.int64)
    n = len(t)
    return Trail(
        person_ref="TW000001",
        start=START,
        end=START + dt.timedelta(days=1),
        t_ms=t,
        lat=np.linspace(51.50, 51.51, n),
        lon=np.linspace(-0.12, -0.11, n),
        accuracy_m=np.full(n, 8.0),
    )


@given(st.lists(st.integers(0, 86_400_000), max_size=60))
def test_runs_cover_every_fix_once_and_break_exactly_at_gaps(offsets: list[int]) -> None:
    trail = make_trail(offsets)
    runs = trail.runs()
    assert sum(r.stop - r.start for r in runs) == len(trail)
    for run in runs:
        assert np.all(np.diff(trail.t_ms[run]) <= GAP_MS)
    for a, b in itertools.pairwise(runs):
        assert a.stop == b.start
        assert trail.t_ms[b.start] - trail.t_ms[a.stop - 1] > GAP_MS
    assert len(trail.gaps()) == max(len(runs) - 1, 0)


def test_a_gap_over_ten_minutes_splits_the_track_in_every_format() -> None:
    minute = 60_000
    trail = make_trail([0, minute, 2 * minute, 2 * minute + GAP_MS + 1, 3 * minute + GAP_MS + 1])
    rows = list(csv.DictReader(io.StringIO(export(trail, "csv"))))
    assert [r["segment"] for r in rows] == ["1", "1", "1", "2", "2"]
    assert rows[0]["time"] == "2026-11-01T00:00:00Z"

    geojson = json.loads(export(trail, "geojson"))
    tracks = [f for f in geojson["features"] if f["properties"]["kind"] == "track"]
    fixes = [f for f in geojson["features"] if f["properties"]["kind"] == "fix"]
    assert [len(f["geometry"]["coordinates"]) for f in tracks] == [3, 2]
    assert len(fixes) == 5

    kml = ElementTree.fromstring(export(trail, "kml"))
    ns = "{http://www.opengis.net/kml/2.2}"
    assert len(list(kml.iter(f"{ns}LineString"))) == 2
    assert len(list(kml.iter(f"{ns}Point"))) == 5


def test_a_gap_of_exactly_ten_minutes_is_still_joined() -> None:
    assert len(make_trail([0, GAP_MS]).runs()) == 1


def test_unknown_format_is_refused_by_name() -> None:
    try:
        export(make_trail([0]), "shp")
    except ValueError as error:
        assert "format" in str(error)
    else:
        raise AssertionError("an unknown format was accepted")
