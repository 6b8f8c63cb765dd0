"""Crime batches end to end on the real database: receive, version, match, review, export."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from crime_scene import SCENE, T0
from sqlalchemy import select
from sqlalchemy.orm import Session

from tagwatch.access.models import AuditEntry
from tagwatch.access.principal import Principal
from tagwatch.crime import service
from tagwatch.crime.matcher import MatchParams
from tagwatch.crime.models import CrimeVersion


def who(username: str, force: str | None = None) -> Principal:
    return Principal(
        user_id=None,
        username=username,
        display_name=username,
        roles=frozenset({"test"}),
        permissions=frozenset(),
        force_code=force,
    )


HUB = who("hub-caseworker")
MANAGER = who("hub-manager")


def crime_line(ref: str, east: float, north: float, start: dt.datetime, hours: float = 1) -> str:
    end = start + dt.timedelta(hours=hours)
    return (
        f"MPS,BIAD,Burglary,MPS20260302,{ref},{start:%Y%m%d%H%M%S},{end:%Y%m%d%H%M%S},"
        f'{east:.1f},{north:.1f},,,OSGB36,"Side window, rear"'
    )


def csv_bytes(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def actions(db: Session) -> list[str]:
    return list(db.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


@pytest.fixture
def walker(make_wearer, add_fixes):  # type: ignore[no-untyped-def]
    """A person walking east past the scene between 10:00 and 10:20, 30 m north of it."""
    allocation = make_wearer("TW-WALKER")
    add_fixes(allocation, [(m, -1000 + 100 * m, 30.0) for m in range(0, 21)])
    return allocation


def test_a_batch_is_received_matched_and_exported(db: Session, walker) -> None:  # type: ignore[no-untyped-def]
    data = csv_bytes(
        crime_line("01/1/26", *SCENE, T0),
        crime_line("01/2/26", SCENE[0] + 5000, SCENE[1], T0),
        crime_line("01/3/26", *SCENE, T0 + dt.timedelta(hours=3)),
        "MPS,XX,bad,MPS20260302,01/4/26,20260302100000,20260302110000,1,1,,,,",
    )
    summary = service.import_batch(db, data, file_name="mps.csv", principal=HUB)
    assert summary.status == "partial"
    assert (summary.total_rows, summary.accepted_rows, summary.failed_rows) == (4, 3, 1)
    assert summary.errors[0].code == "INVALID_CRIME_TYPE"
    assert summary.run is not None and summary.run.trigger == "auto"
    assert summary.run.match_count == 1
    assert summary.run.algorithm_version
    assert summary.run.max_record_id > 0

    rows = service.batch_matches(db, summary.batch_id, HUB)
    assert len(rows) == 1
    match = rows[0]
    assert (match.crime_ref, match.person_ref) == ("01/1/26", "TW-WALKER")
    assert match.closest_distance_m == pytest.approx(30.0, abs=0.5)
    assert match.closest_time == T0 + dt.timedelta(minutes=10)
    assert match.passes == 1
    assert match.fixes_in_radius == 1  # only the 10:10 fix is within 100 m
    # Only the first 20 minutes of the hour-long window are covered.
    assert match.coverage_pct == pytest.approx(100 * 20 / 60)

    text = service.export_matches(db, summary.batch_id, HUB)
    table = list(csv.reader(io.StringIO(text)))
    assert table[0] == list(service.MATCH_CSV_COLUMNS)
    assert table[1][:6] == ["MPS20260302", "MPS", "01/1/26", "BIAD", "TW-WALKER", match.device]
    assert table[1][7] == "2026-03-02T10:10:00.000Z"
    assert {
        "crime.batch.receive",
        "crime.match.run",
        "crime.match.view",
        "crime.match.export",
    } <= set(actions(db))


def test_re_sent_crimes_become_versions_or_duplicates(db: Session) -> None:
    first = csv_bytes(crime_line("01/9/26", *SCENE, T0))
    service.import_batch(db, first, file_name="a.csv", principal=HUB, match=False)
    service.import_batch(db, first, file_name="b.csv", principal=HUB, match=False)
    moved = csv_bytes(crime_line("01/9/26", SCENE[0] + 50, SCENE[1], T0))
    latest = service.import_batch(db, moved, file_name="c.csv", principal=HUB, match=False)
    versions = list(db.scalars(select(CrimeVersion).order_by(CrimeVersion.id)))
    assert [(v.version_no, v.duplicate, v.changed_fields) for v in versions] == [
        (1, False, []),
        (1, True, []),
        (2, False, ["crime_location"]),
    ]
    assert latest.duplicate_rows == 0


def test_review_authorisation_and_police_scope(db: Session, walker) -> None:  # type: ignore[no-untyped-def]
    summary = service.import_batch(
        db, csv_bytes(crime_line("01/1/26", *SCENE, T0)), file_name="m.csv", principal=HUB
    )
    police = who("officer", force="MPS")
    other_force = who("kent-officer", force="KNT")
    assert service.batch_matches(db, summary.batch_id, police) == []
    with pytest.raises(service.NotFound):
        service.batch_matches(db, summary.batch_id, other_force)

    match_id = service.batch_matches(db, summary.batch_id, HUB)[0].match_id
    with pytest.raises(service.CrimeError, match="qualified"):
        service.authorise_match(db, match_id, MANAGER)
    with pytest.raises(service.CrimeError, match="reason"):
        service.review_match(db, match_id, HUB, "qualified", " ")
    service.review_match(db, match_id, HUB, "qualified", "Close pass during the window")
    with pytest.raises(service.CrimeError, match="reviewer"):
        service.authorise_match(db, match_id, HUB)
    assert service.batch_matches(db, summary.batch_id, police) == []
    service.authorise_match(db, match_id, MANAGER)
    seen = service.batch_matches(db, summary.batch_id, police)
    assert [m.match_id for m in seen] == [match_id]
    assert seen[0].authorised


def test_a_rerun_with_the_recorded_snapshot_repeats_the_run(
    db: Session,
    walker,
    add_fixes,
    make_wearer,  # type: ignore[no-untyped-def]
) -> None:
    summary = service.import_batch(
        db, csv_bytes(crime_line("01/1/26", *SCENE, T0)), file_name="m.csv", principal=HUB
    )
    first = summary.run
    assert first is not None
    # A second wearer's fixes arrive late, after the run.
    add_fixes(make_wearer(), [(5, 0.0, 0.0), (6, 10.0, 0.0)])
    again = service.run_matching(
        db, summary.batch_id, principal=HUB, up_to_record_id=first.max_record_id
    )
    fresh = service.run_matching(db, summary.batch_id, principal=HUB, params=MatchParams())
    assert (first.match_count, again.match_count, fresh.match_count) == (1, 1, 2)
    assert again.max_record_id == first.max_record_id < fresh.max_record_id
    assert service.batch_matches(db, summary.batch_id, HUB)[0].run_id == fresh.run_id


def test_where_was_a_named_person(db: Session, walker) -> None:  # type: ignore[no-untyped-def]
    service.import_batch(
        db,
        csv_bytes(
            crime_line("01/1/26", *SCENE, T0),
            crime_line("01/2/26", SCENE[0] + 5000, SCENE[1], T0, hours=0.25),
            crime_line("01/3/26", *SCENE, T0 + dt.timedelta(hours=5)),
        ),
        file_name="m.csv",
        principal=HUB,
        match=False,
    )
    near = service.where_was_person(db, "TW-WALKER", "01/1/26", HUB)
    assert near.verdict == "within" and near.closest_distance_m == pytest.approx(30, abs=0.5)
    away = service.where_was_person(db, "TW-WALKER", "01/2/26", HUB)
    assert away.verdict == "away"
    assert away.closest_distance_m == pytest.approx(4500.1, abs=0.5)
    assert away.coverage_pct == pytest.approx(100.0)
    none = service.where_was_person(db, "TW-WALKER", "01/3/26", HUB)
    assert none.verdict == "no_data"
    assert none.uncovered == [(T0 + dt.timedelta(hours=5), T0 + dt.timedelta(hours=6))]
    assert actions(db).count("crime.where_was") == 3


def test_police_may_only_send_their_own_force(db: Session) -> None:
    data = csv_bytes(crime_line("01/1/26", *SCENE, T0))
    with pytest.raises(service.CrimeError, match="KNT"):
        service.import_batch(
            db, data, file_name="x.csv", principal=who("k", "KNT"), expected_force="MPS"
        )
    refused = service.import_batch(db, data, file_name="x.csv", principal=who("k", "KNT"))
    assert refused.status == "error"
