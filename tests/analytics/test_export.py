"""The daily Parquet export: what it writes, that it matches the store, and that it hides
who people are."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from analytics_cases import DAY, START, Cohort, c_fix_times, feed, gps
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from tagwatch.access.models import AuditEntry
from tagwatch.access.pseudonymise import pseudonym
from tagwatch.alerts.models import Alert
from tagwatch.analytics.export import PART_FILE, export_day, manifest_path, partition_dir
from tagwatch.analytics.pseudonyms import device_pseudonym
from tagwatch.analytics.tables import SCHEMA_VERSION, TABLES
from tagwatch.compliance.models import Violation
from tagwatch.compliance.rules import RULE_SET_VERSION
from tagwatch.settings import Settings
from tagwatch.telemetry.epoch import to_ms
from tagwatch.telemetry.models import DeviceEvent, GpsFix

END = START + dt.timedelta(days=1)


def _count(db: Session, *where: ColumnElement[bool]) -> int:
    return int(db.scalar(select(func.count()).where(*where)) or 0)


def _store_counts(db: Session) -> dict[str, int]:
    start_ms, end_ms = to_ms(START), to_ms(END)
    return {
        "fixes": _count(db, GpsFix.t_ms >= start_ms, GpsFix.t_ms < end_ms),
        "events": _count(db, DeviceEvent.t_ms >= start_ms, DeviceEvent.t_ms < end_ms),
        "violations": _count(db, Violation.start >= START, Violation.start < END),
        "alerts": _count(db, Alert.event_at >= START, Alert.event_at < END),
    }


def _table(out: Path, name: str) -> list[dict[str, Any]]:
    dataset = ds.dataset(out / name, format="parquet", partitioning="hive")
    rows: list[dict[str, Any]] = dataset.to_table().to_pylist()
    return rows


def test_each_table_holds_the_days_rows_as_the_store_counts_them(
    db: Session, cohort: Cohort, settings: Settings, tmp_path: Path
) -> None:
    result = export_day(db, DAY, tmp_path)

    expected = _store_counts(db)
    assert expected["violations"] >= 2 and expected["alerts"] >= 2  # the cohort did things
    assert result.rows == expected
    for table in TABLES:
        assert len(_table(tmp_path, table.name)) == expected[table.name]
    # The fixes are exactly the day's: not the one a millisecond before, nor the one at its end.
    fix_ids = {
        i
        for (i,) in db.execute(
            select(GpsFix.id).where(GpsFix.t_ms >= to_ms(START), GpsFix.t_ms < to_ms(END))
        )
    }
    rows = _table(tmp_path, "fixes")
    assert {r["fix_id"] for r in rows} == fix_ids
    assert all(r["day"] == DAY.isoformat() for r in rows)
    assert min(r["observed_at"] for r in rows) == START
    key = settings.pseudonym_key
    c = cohort.wearers["C"]
    c_rows = [r for r in rows if r["person"] == pseudonym(c.ref, key)]
    assert len(c_rows) == len(c_fix_times())
    assert {r["device"] for r in c_rows} == {device_pseudonym(c.serial, key)}
    assert sum(1 for r in rows if r["person"] is None) == 3  # the spare device's
    [impossible] = [r for r in rows if r["implausible_reason"] is not None]
    assert (impossible["lat"], impossible["lon"]) == (0.0, 0.0)
    b_fix = next(r for r in rows if r["person"] == pseudonym(cohort.wearers["B"].ref, key))
    assert (b_fix["sats"], b_fix["hdop"]) == (9, 0.8)


def test_events_violations_and_alerts_carry_their_meaning(
    db: Session, cohort: Cohort, settings: Settings, tmp_path: Path
) -> None:
    export_day(db, DAY, tmp_path)
    key = settings.pseudonym_key
    a, b, c = (pseudonym(cohort.wearers[k].ref, key) for k in "ABC")

    events = {(r["person"], r["type"]): r for r in _table(tmp_path, "events")}
    assert events[(c, "rf")]["rf_state"] == "in_range"
    assert events[(c, "rf")]["rf_unit"] == device_pseudonym("HMU-ANA-3", key)
    assert events[(c, "status")]["battery_pct"] == 64
    assert events[(c, "status")]["charging"] is False
    assert events[(c, "checkin")]["checkin_result"] == "success"
    assert events[(b, "status")]["strap"] == "open"

    violations = _table(tmp_path, "violations")
    [zone] = [v for v in violations if v["rule_id"] == "zone.exclusion.entry"]
    assert zone["person"] == a and zone["condition_type"] == "exclusion_zone"
    assert zone["evidence_fix_ids"] and zone["evidence_at"] == START + dt.timedelta(hours=12)
    stored = db.get(GpsFix, zone["evidence_fix_id"])
    assert stored is not None and (zone["evidence_lat"], zone["evidence_lon"]) == (
        stored.lat,
        stored.lon,
    )
    [strap] = [v for v in violations if v["rule_id"] == "tamper.strap"]
    assert strap["person"] == b and strap["evidence_event_ids"]
    assert strap["evidence_fix_id"] is None and strap["evidence_lat"] is None

    alerts = {r["violation_id"]: r for r in _table(tmp_path, "alerts")}
    assert alerts[zone["violation_id"]]["person"] == a
    assert alerts[strap["violation_id"]]["needs_tamper_review"] is True


def test_duckdb_reads_the_export_and_recounts_per_person(
    db: Session, cohort: Cohort, settings: Settings, tmp_path: Path
) -> None:
    export_day(db, DAY, tmp_path)
    key = settings.pseudonym_key
    fixes = f"read_parquet('{tmp_path}/fixes/*/*.parquet', hive_partitioning = true)"
    with duckdb.connect() as con:
        per_person = dict(
            con.execute(
                f"SELECT person, count(*) FROM {fixes} WHERE day = DATE '{DAY}' "
                "AND person IS NOT NULL GROUP BY person"
            ).fetchall()
        )
        [(day_type,)] = con.execute(f"SELECT DISTINCT typeof(day) FROM {fixes}").fetchall()
        violations = f"read_parquet('{tmp_path}/violations/*/*.parquet', hive_partitioning = 1)"
        [(joined,)] = con.execute(
            f"SELECT count(*) FROM {violations} v JOIN {fixes} f ON f.fix_id = v.evidence_fix_id"
        ).fetchall()
    stored = dict(
        db.execute(
            select(GpsFix.allocation_id, func.count())
            .where(GpsFix.t_ms >= to_ms(START), GpsFix.t_ms < to_ms(END))
            .where(GpsFix.allocation_id.is_not(None))
            .group_by(GpsFix.allocation_id)
        ).all()
    )
    assert per_person == {
        pseudonym(w.ref, key): stored[w.allocation_id] for w in cohort.wearers.values()
    }
    assert day_type == "DATE"
    day_violations = db.scalars(
        select(Violation).where(Violation.start >= START, Violation.start < END)
    ).all()
    # Every violation with evidence fixes finds its first one among the day's fixes.
    assert joined == sum(1 for v in day_violations if v.evidence_fixes) >= 1


def test_no_file_names_or_identifies_anyone(db: Session, cohort: Cohort, tmp_path: Path) -> None:
    export_day(db, DAY, tmp_path)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == len(TABLES) + 1
    text = []
    for path in files:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            text.append(json.dumps(table.to_pylist(), default=str))
            text.append(json.dumps(table.schema.names))
        else:
            text.append(path.read_text(encoding="utf-8"))
    everything = "\n".join(text).lower()
    for secret in cohort.identifying_strings():
        assert secret.lower() not in everything, secret


def test_running_a_day_again_replaces_its_files_and_leaves_other_days(
    db: Session, cohort: Cohort, settings: Settings, tmp_path: Path
) -> None:
    previous_day = DAY - dt.timedelta(days=1)
    export_day(db, previous_day, tmp_path)
    before_other = (partition_dir(tmp_path, "fixes", previous_day) / PART_FILE).read_bytes()
    first = export_day(db, DAY, tmp_path, now=START + dt.timedelta(days=1, hours=2))
    late = START + dt.timedelta(hours=23, minutes=59)
    feed(db, settings, [gps(cohort.wearers["A"].serial, late, 530_001, 180_000)])

    second = export_day(db, DAY, tmp_path, now=START + dt.timedelta(days=1, hours=3))

    assert second.rows["fixes"] == first.rows["fixes"] + 1 == _store_counts(db)["fixes"]
    assert len(_table(tmp_path, "fixes")) == first.rows["fixes"] + 1 + 1  # + the 21st's one
    for table in TABLES:
        assert sorted(p.name for p in partition_dir(tmp_path, table.name, DAY).iterdir()) == [
            PART_FILE
        ]
    manifest = json.loads(manifest_path(tmp_path, DAY).read_text())
    assert manifest["generated_at"] == "2026-11-23T03:00:00.000+00:00"
    assert manifest["tables"]["fixes"]["rows"] == second.rows["fixes"]
    assert (partition_dir(tmp_path, "fixes", previous_day) / PART_FILE).read_bytes() == (
        before_other
    )


def test_a_failed_run_replaces_nothing_and_leaves_no_partial_file(
    db: Session, cohort: Cohort, tmp_path: Path
) -> None:
    export_day(db, DAY, tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    def fail_in_events(table: str, _rows: int) -> None:
        if table == "events":
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        export_day(db, DAY, tmp_path, progress=fail_in_events)

    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_the_manifest_says_what_was_written(db: Session, cohort: Cohort, tmp_path: Path) -> None:
    result = export_day(db, DAY, tmp_path, now=dt.datetime(2026, 11, 23, 2, tzinfo=dt.UTC))
    manifest = json.loads(manifest_path(tmp_path, DAY).read_text())
    assert manifest == result.manifest
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["day"] == "2026-11-22" and manifest["pseudonymised"] is True
    assert manifest["rule_set_version"] == RULE_SET_VERSION
    assert manifest["violation_rule_set_versions"] == [RULE_SET_VERSION]
    assert manifest["generated_at"] == "2026-11-23T02:00:00.000+00:00"
    for table in TABLES:
        entry = manifest["tables"][table.name]
        assert pq.read_metadata(tmp_path / entry["path"]).num_rows == entry["rows"]
        assert pq.read_schema(tmp_path / entry["path"]).equals(table.schema)


def test_the_export_streams_in_chunks_of_bounded_size(
    db: Session, cohort: Cohort, tmp_path: Path
) -> None:
    result = export_day(db, DAY, tmp_path, chunk_rows=100)
    metadata = pq.read_metadata(partition_dir(tmp_path, "fixes", DAY) / PART_FILE)
    assert metadata.num_row_groups == -(-result.rows["fixes"] // 100)
    assert max(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)) == 100


def test_an_empty_day_still_gets_every_file_with_its_schema(db: Session, tmp_path: Path) -> None:
    result = export_day(db, dt.date(2020, 1, 1), tmp_path)
    assert set(result.rows.values()) == {0}
    for table in TABLES:
        path = partition_dir(tmp_path, table.name, dt.date(2020, 1, 1)) / PART_FILE
        assert pq.read_schema(path).equals(table.schema)


def test_every_export_is_audited(db: Session, cohort: Cohort, tmp_path: Path) -> None:
    before = db.scalar(select(func.max(AuditEntry.id))) or 0
    result = export_day(db, DAY, tmp_path, via="cli")
    [entry] = db.scalars(select(AuditEntry).where(AuditEntry.id > before)).all()
    assert entry.action == "analytics.export"
    assert (entry.subject_type, entry.subject_id) == ("analytics_day", "2026-11-22")
    assert entry.username == "system" and entry.purpose
    assert entry.detail == {"via": "cli", "out": str(tmp_path), "rows": result.rows}
