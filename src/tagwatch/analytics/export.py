"""The daily export: one UTC day of fixes, events, violations and alerts as Parquet files.

Layout (hive partitioning, one file per table and day, plus a manifest per day):

    <out>/fixes/day=2026-11-22/part-0.parquet
    <out>/events/day=2026-11-22/part-0.parquet
    <out>/violations/day=2026-11-22/part-0.parquet
    <out>/alerts/day=2026-11-22/part-0.parquet
    <out>/manifests/day=2026-11-22.json

Every file is first written in full beside its final name (a dot-file, which Parquet readers
skip), then all of them replace their predecessors with `os.replace` and the manifest goes
last. A reader therefore sees each file whole, old or new; a failed run replaces nothing; and
running a day again replaces exactly that day's files. The audit entry is appended at the end,
after the long read, because appending serialises the audit log's writers until commit.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.orm import Session

from tagwatch.access.audit import record
from tagwatch.access.principal import Principal
from tagwatch.analytics import repository
from tagwatch.analytics.pseudonyms import Pseudonyms
from tagwatch.analytics.repository import DayWindow
from tagwatch.analytics.tables import SCHEMA_VERSION, TABLES, ExportTable
from tagwatch.compliance.rules import RULE_SET_VERSION
from tagwatch.db.base import utcnow
from tagwatch.settings import Settings, settings_of

# Rows read, converted and written at a time: one Parquet row group each. A chunk of fixes
# is a few tens of MB in Python, whatever the size of the day.
CHUNK_ROWS = 50_000
PART_FILE = "part-0.parquet"
MANIFEST_DIR = "manifests"
COMPRESSION = "zstd"

Progress = Callable[[str, int], None]


def default_out_dir(settings: Settings) -> Path:
    return settings.var_dir / "analytics"


def partition_dir(out_dir: Path, table: str, day: dt.date) -> Path:
    return out_dir / table / f"day={day.isoformat()}"


def manifest_path(out_dir: Path, day: dt.date) -> Path:
    return out_dir / MANIFEST_DIR / f"day={day.isoformat()}.json"


@dataclass(frozen=True)
class ExportResult:
    day: dt.date
    out_dir: Path
    manifest: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def rows(self) -> dict[str, int]:
        return {name: table["rows"] for name, table in self.manifest["tables"].items()}


def export_day(
    session: Session,
    day: dt.date,
    out_dir: Path,
    *,
    principal: Principal | None = None,
    via: str = "cli",
    now: dt.datetime | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: Progress | None = None,
) -> ExportResult:
    """Write (or rewrite) the day's files and manifest; audit the export."""
    if chunk_rows < 1:
        raise ValueError("chunk_rows: must be at least 1")
    settings = settings_of(session)
    names = Pseudonyms(settings.pseudonym_key)
    window = DayWindow(day)
    generated_at = now or utcnow()
    staged: list[tuple[Path, Path]] = []
    try:
        counts: dict[str, int] = {}
        for table in TABLES:
            final = partition_dir(out_dir, table.name, day) / PART_FILE
            staging = _staging_name(final)
            staged.append((staging, final))
            counts[table.name] = _write_table(
                staging, table, table.batches(session, window, names, chunk_rows), progress
            )
        manifest = _manifest(session, window, generated_at, counts)
        record(
            session,
            principal,
            "analytics.export",
            subject_type="analytics_day",
            subject_id=day.isoformat(),
            purpose="pseudonymised analytics export",
            detail={"via": via, "out": str(out_dir), "rows": counts},
        )
        manifest_file = manifest_path(out_dir, day)
        manifest_staging = _staging_name(manifest_file)
        staged.append((manifest_staging, manifest_file))
        _write_durably(manifest_staging, json.dumps(manifest, indent=2).encode() + b"\n")
        for staging, final in staged:
            os.replace(staging, final)
            _sync_dir(final.parent)
    finally:
        for staging, _final in staged:
            staging.unlink(missing_ok=True)
    return ExportResult(day, out_dir, manifest, {name: f for name, f in _files(out_dir, day)})


def read_manifest(out_dir: Path, day: dt.date) -> dict[str, Any] | None:
    """The day's manifest, or None when the day was never exported (or its manifest is not
    readable, which a fresh export mends)."""
    try:
        found = json.loads(manifest_path(out_dir, day).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _manifest(
    session: Session, window: DayWindow, generated_at: dt.datetime, counts: dict[str, int]
) -> dict[str, Any]:
    day = window.day.isoformat()
    return {
        "schema_version": SCHEMA_VERSION,
        "day": day,
        "generated_at": generated_at.astimezone(dt.UTC).isoformat(timespec="milliseconds"),
        "rule_set_version": RULE_SET_VERSION,
        "violation_rule_set_versions": repository.violation_rule_set_versions(session, window),
        "pseudonymised": True,
        "tables": {
            table.name: {
                "path": f"{table.name}/day={day}/{PART_FILE}",
                "rows": counts[table.name],
                "day_column": table.day_column,
            }
            for table in TABLES
        },
    }


def _write_table(
    path: Path,
    table: ExportTable,
    batches: Iterable[pa.RecordBatch],
    progress: Progress | None,
) -> int:
    """Stream the batches into one Parquet file (a row group each); an empty day still gets
    a file with the schema, so a day that lost its rows is replaced, not left stale."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with open(path, "wb") as sink:
        with pq.ParquetWriter(sink, table.schema, compression=COMPRESSION) as writer:
            for batch in batches:
                writer.write_batch(batch)
                rows += batch.num_rows
                if progress is not None:
                    progress(table.name, rows)
        sink.flush()
        os.fsync(sink.fileno())
    return rows


def _staging_name(final: Path) -> Path:
    # A leading dot: pyarrow and DuckDB skip it when they read the table's folder.
    return final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")


def _write_durably(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as sink:
        sink.write(content)
        sink.flush()
        os.fsync(sink.fileno())


def _sync_dir(path: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _files(out_dir: Path, day: dt.date) -> list[tuple[str, Path]]:
    return [(t.name, partition_dir(out_dir, t.name, day) / PART_FILE) for t in TABLES]
