"""The store-side track boxes: every person who matches a crime is among the candidates they
give, whether the boxes are fresh, stale or empty, and a run through them matches exactly."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
from crime_reference import Crime, Fix, match_all
from crime_scene import SCENE, T0
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from case_builders import allocate
from tagwatch.cases.models import Allocation
from tagwatch.crime import service
from tagwatch.crime.matcher import MatchParams, match_crimes
from tagwatch.crime.models import CrimeVersion, TrackHourBox
from tagwatch.crime.track_boxes import (
    HOUR_MS,
    REACH_MS,
    Boxes,
    CrimePlace,
    boxed_up_to,
    boxes_of,
    candidate_allocations,
    candidate_devices,
    rebuild_track_boxes,
    refresh_track_boxes,
)
from tagwatch.telemetry.epoch import to_ms
from tagwatch.telemetry.repository import load_fixes

E0, N0 = SCENE
STEPS_MS = [0, 1_000, 60_000, 599_999, 600_000, 1_200_000, 1_800_000, 1_800_001, 3_599_999]


def _near(boxes: Boxes, crime: Crime, params: MatchParams) -> set[str]:
    """The boxes' answer for one crime, as `candidate_devices` asks it of the store."""
    w0 = crime.t_from - params.tolerance_ms
    w1 = crime.t_to + params.tolerance_ms
    first = (w0 - params.max_gap_ms) // HOUR_MS * HOUR_MS
    last = w1 // HOUR_MS * HOUR_MS
    r = params.radius_m + 0.001
    hit = (
        (boxes.hour_ms >= first)
        & (boxes.hour_ms <= last)
        & (boxes.min_x <= crime.x + r)
        & (boxes.max_x >= crime.x - r)
        & (boxes.min_y <= crime.y + r)
        & (boxes.max_y >= crime.y - r)
    )
    return set(boxes.device[hit].tolist())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_every_matching_device_has_a_box_near_the_crime(data: st.DataObject) -> None:
    params = MatchParams(
        radius_m=data.draw(st.sampled_from([0.0, 50.0, 100.0])),
        tolerance_s=data.draw(st.sampled_from([0.0, 60.0])),
        max_gap_s=data.draw(st.sampled_from([60.0, 600.0, REACH_MS / 1000])),
    )
    coord = st.floats(-2_000, 2_000, allow_nan=False)
    fixes: list[Fix] = []
    for owner in range(data.draw(st.integers(1, 4))):
        t = data.draw(st.integers(0, 4 * HOUR_MS))
        for _ in range(data.draw(st.integers(1, 10))):
            t += data.draw(st.sampled_from(STEPS_MS) | st.integers(0, 2 * HOUR_MS))
            fixes.append(
                Fix(owner, t, E0 + data.draw(coord), N0 + data.draw(coord), 5.0, len(fixes))
            )
    crimes = []
    for cid in range(data.draw(st.integers(1, 3))):
        t_from = data.draw(st.integers(0, 12 * HOUR_MS))
        t_to = t_from + data.draw(st.sampled_from([0, HOUR_MS, 12 * HOUR_MS]))
        crimes.append(Crime(cid, E0 + data.draw(coord), N0 + data.draw(coord), t_from, t_to))
    boxes = boxes_of(
        np.array([f"D{f.owner}" for f in fixes]),
        np.array([f.t for f in fixes], dtype=np.int64),
        np.array([f.x for f in fixes]),
        np.array([f.y for f in fixes]),
    )
    matches = match_all(crimes, fixes, params.radius_m, params.tolerance_ms, params.max_gap_ms)
    for crime in crimes:
        near = _near(boxes, crime, params)
        for crime_id, owner in matches:
            if crime_id == crime.crime_id:
                assert f"D{owner}" in near


def test_a_fix_widens_its_hour_and_within_the_reach_the_hour_before() -> None:
    t = np.array([10 * HOUR_MS + 5, 10 * HOUR_MS + REACH_MS, 11 * HOUR_MS - 1], dtype=np.int64)
    boxes = boxes_of(np.array(["A", "A", "A"]), t, np.array([1.0, 2.0, 3.0]), np.zeros(3))
    by_hour = dict(zip(boxes.hour_ms.tolist(), boxes.max_x.tolist(), strict=True))
    assert by_hour == {9 * HOUR_MS: 1.0, 10 * HOUR_MS: 3.0}


def _box_rows(db: Session) -> list[tuple[object, ...]]:
    box = TrackHourBox
    rows = db.execute(
        select(box.device_serial, box.hour_ms, box.min_x, box.min_y, box.max_x, box.max_y).order_by(
            box.device_serial, box.hour_ms
        )
    )
    return [tuple(r) for r in rows]


def _place(east: float, north: float, start: dt.datetime, hours: float = 1) -> CrimePlace:
    return CrimePlace(east, north, to_ms(start), to_ms(start + dt.timedelta(hours=hours)))


def _refresh_until_settled(db: Session, newest: int) -> bool:
    """Refresh the boxes; whether they now hold every fix up to `newest`. Always on SQLite;
    on PostgreSQL once the transactions writing at the previous refresh have ended (other
    sessions of the server may keep it from settling)."""
    for _ in range(3):
        refresh_track_boxes(db)
        if boxed_up_to(db) >= newest:
            return True
    assert db.connection().dialect.name == "postgresql"
    return False


def test_candidates_are_found_with_fresh_stale_or_no_boxes(
    db: Session, make_wearer: Callable[..., Allocation], add_fixes: Callable[..., list[int]]
) -> None:
    walker = make_wearer()
    away = make_wearer()
    ids = add_fixes(walker, [(m, -1000 + 100 * m, 30.0) for m in range(21)])
    ids += add_fixes(away, [(m, 5000.0, 5000.0 + 10 * m) for m in range(21)])
    params = MatchParams()
    crime = [_place(*SCENE, T0)]
    both = sorted([walker.id, away.id])
    # No boxes yet: every device with fixes in the window is a candidate.
    assert candidate_allocations(db, crime, params) == both
    settled = _refresh_until_settled(db, max(ids))
    assert candidate_allocations(db, crime, params) == ([walker.id] if settled else both)
    # A later fix of the far wearer next to the scene, not boxed yet, makes them a candidate.
    ids += add_fixes(away, [(40, 10.0, 10.0)])
    assert candidate_allocations(db, [_place(*SCENE, T0, hours=2)], params) == both
    settled = _refresh_until_settled(db, max(ids))
    far = candidate_devices(db, [_place(SCENE[0] + 20_000, SCENE[1], T0)], params)
    assert far == set() or not settled
    # Boxed now, the fix next to the scene still makes them a candidate.
    assert candidate_allocations(db, [_place(*SCENE, T0, hours=2)], params) == both


def test_refreshing_is_idempotent_and_equals_a_rebuild(
    db: Session, make_wearer: Callable[..., Allocation], add_fixes: Callable[..., list[int]]
) -> None:
    wearer = make_wearer()
    ids = add_fixes(wearer, [(m, 10.0 * m, 0.0) for m in range(0, 200, 7)])
    refresh_track_boxes(db)
    ids += add_fixes(wearer, [(m + 0.5, -10.0 * m, 5.0) for m in range(3, 200, 11)])
    refresh_track_boxes(db)
    incremental = _box_rows(db)
    again = refresh_track_boxes(db)  # on PostgreSQL it may read the last ones again
    assert _box_rows(db) == incremental
    rebuild_track_boxes(db)
    assert _box_rows(db) == incremental
    if db.connection().dialect.name == "sqlite":
        # One writer at a time: the mark moves past everything merged at once.
        assert boxed_up_to(db) == max(ids)
        assert again == 0


def test_a_person_with_two_devices_in_the_window_is_always_read(
    db: Session, make_wearer: Callable[..., Allocation], add_fixes: Callable[..., list[int]]
) -> None:
    first = make_wearer("TW-SWAP")
    person_id = first.person_id
    first.removed_at = T0 + dt.timedelta(minutes=10)
    second = allocate(
        db,
        person_ref="TW-SWAP-2",
        order_ref="ORD-SWAP-2",
        serial="GPS-SWAP-2",
        fitted_at=T0 + dt.timedelta(minutes=10),
    )
    second.person_id = person_id
    db.flush()
    # Each device stays 3 km from the scene; the segment from one to the other crosses it.
    add_fixes(first, [(m, -3000.0, 0.0) for m in range(0, 10)])
    add_fixes(second, [(m, 3000.0, 0.0) for m in range(12, 20)])
    refresh_track_boxes(db)
    found = candidate_allocations(db, [_place(*SCENE, T0)], MatchParams(max_gap_s=600))
    assert {first.id, second.id} <= set(found)


def test_a_run_through_the_boxes_matches_as_a_run_over_every_fix(
    db: Session, make_wearer: Callable[..., Allocation], add_fixes: Callable[..., list[int]]
) -> None:
    ids: list[int] = []
    for north in (-50.0, 0.0, 60.0, 2_000.0, 3_000.0):
        wearer = make_wearer()
        ids += add_fixes(wearer, [(m, -1000 + 80 * m, north) for m in range(0, 30)])
    settled = _refresh_until_settled(db, max(ids))
    line = (
        f"MPS,BIAD,Burglary,MPS20260302,BOX/1,{T0:%Y%m%d%H%M%S},"
        f"{T0 + dt.timedelta(hours=1):%Y%m%d%H%M%S},{SCENE[0]:.1f},{SCENE[1]:.1f},,,OSGB36,x"
    )
    summary = service.import_batch(db, (line + "\n").encode(), file_name="b.csv", principal=None)
    assert summary.run is not None
    boxed = service.batch_matches(db, summary.batch_id, None)

    every = service.person_tracks(
        db, load_fixes(db, start=T0 - dt.timedelta(hours=1), end=T0 + dt.timedelta(hours=2))
    )
    version = db.scalars(
        select(CrimeVersion).where(CrimeVersion.batch_id == summary.batch_id)
    ).one()
    expected = match_crimes(service._crime_set([version]), every.tracks, MatchParams())
    ref_of = {info.person_id: info.person_ref for info in every.info.values()}
    assert sorted((r.person_ref, round(r.closest_distance_m, 6)) for r in boxed) == sorted(
        (ref_of[int(o)], round(float(d), 6))
        for o, d in zip(expected.owner, expected.closest_distance_m, strict=True)
    )
    assert len(boxed) == 3
    # Only the three who passed were read (all five while the boxes have not settled).
    assert summary.run.fixes_considered == (3 if settled else 5) * 30
