"""Crime mapping use cases: receive a batch, match it, review and export. Never commits.

Results are plain dataclasses so pages, the API and the CLI share them.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import io
import math
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
from sqlalchemy.orm import Session

from tagwatch.access import audit
from tagwatch.access.principal import Principal
from tagwatch.crime import repository as repo
from tagwatch.crime import track_boxes
from tagwatch.crime.csvformat import ERROR, FAILED, CrimeRow, RowError, parse_crime_csv
from tagwatch.crime.matcher import (
    ALGORITHM_VERSION,
    CrimeSet,
    MatchParams,
    MatchResult,
    TrackSet,
    match_crimes,
    where_was,
)
from tagwatch.crime.models import (
    Crime,
    CrimeBatch,
    CrimeBatchError,
    CrimeMatch,
    CrimeMatchPosition,
    CrimeMatchRun,
    CrimeVersion,
)
from tagwatch.db.base import utcnow
from tagwatch.geo.projection import to_bng, to_wgs84
from tagwatch.telemetry.epoch import from_ms, to_ms
from tagwatch.telemetry.repository import FixTable, load_fixes

MATCH_CSV_COLUMNS = (
    "batch_id",
    "force",
    "crime_ref",
    "crime_type",
    "person_ref",
    "device",
    "closest_distance_m",
    "closest_time",
    "first_time_in_radius",
    "last_time_in_radius",
    "fixes_in_radius",
    "passes",
    "coverage_pct",
    "max_accuracy_m",
)
# Fields compared between versions of a crime, grouped as the hub reads them.
_VERSION_FIELDS = {
    "crime_type": ("crime_type",),
    "crime_window": ("t_from", "t_to"),
    "crime_location": ("easting", "northing", "latitude", "longitude"),
    "free_text": ("free_text",),
}
REVIEW_DECISIONS = ("qualified", "dismissed")
T = TypeVar("T")


class CrimeError(ValueError):
    """A request the crime service refuses, with the field and the reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFound(LookupError):
    pass


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSummary:
    run_id: int
    batch_id: int
    trigger: str
    status: str
    algorithm_version: str
    radius_m: float
    tolerance_s: float
    max_gap_s: float
    max_record_id: int
    fixes_considered: int
    crimes_considered: int
    match_count: int
    started_at: dt.datetime
    ended_at: dt.datetime
    error: str | None = None


@dataclass(frozen=True)
class BatchSummary:
    batch_id: int
    force_code: str | None
    batch_ref: str | None
    file_name: str
    received_at: dt.datetime
    status: str
    total_rows: int
    accepted_rows: int
    failed_rows: int
    duplicate_rows: int
    header_skipped: bool
    file_errors: list[str]
    errors: list[RowError] = field(default_factory=list)
    run: RunSummary | None = None


@dataclass(frozen=True)
class MatchRow:
    match_id: int
    run_id: int
    batch_id: int
    batch_ref: str
    force: str
    crime_ref: str
    crime_type: str
    crime_version_id: int
    t_from: dt.datetime
    t_to: dt.datetime
    crime_latitude: float
    crime_longitude: float
    person_ref: str
    device: str
    closest_distance_m: float
    closest_time: dt.datetime
    first_time_in_radius: dt.datetime
    last_time_in_radius: dt.datetime
    fixes_in_radius: int
    passes: int
    coverage_pct: float
    max_accuracy_m: float | None
    review_state: str
    review_reason: str | None
    authorised: bool
    reviewed_by: str | None = None
    reviewed_at: dt.datetime | None = None
    authorised_by: str | None = None
    authorised_at: dt.datetime | None = None

    @property
    def state(self) -> str:
        """Where the match is in review: unreviewed, qualified, authorised or dismissed."""
        return "authorised" if self.authorised else self.review_state


@dataclass(frozen=True)
class VersionRow:
    """A crime as one batch carried it, with what changed since the version before."""

    version_id: int
    row: int
    crime_ref: str
    version_no: int
    duplicate: bool
    changed_fields: list[str]
    crime_type: str
    crime_type_description: str
    t_from: dt.datetime
    t_to: dt.datetime
    easting: float
    northing: float
    latitude: float
    longitude: float
    location_source: str
    free_text: str


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a longer list."""

    items: list[T]
    total: int
    offset: int


@dataclass(frozen=True)
class WhereAnswer:
    person_ref: str
    crime_ref: str
    force: str
    verdict: str  # within, away, no_data
    radius_m: float
    closest_distance_m: float | None
    closest_time: dt.datetime | None
    coverage_pct: float
    fixes_in_window: int
    window_start: dt.datetime
    window_end: dt.datetime
    uncovered: list[tuple[dt.datetime, dt.datetime]]

    @property
    def sentence(self) -> str:
        if self.verdict == "within":
            return (
                f"Within {self.closest_distance_m:.0f} m of the crime "
                f"(closest at {self.closest_time:%Y-%m-%d %H:%M:%S} UTC)."
            )
        if self.verdict == "away":
            return (
                f"At least {self.closest_distance_m:.0f} m away throughout the window, "
                f"with {self.coverage_pct:.0f}% of it covered by the track."
            )
        return "No location data for the window."


def _run_summary(run: CrimeMatchRun) -> RunSummary:
    return RunSummary(
        run.id,
        run.batch_id,
        run.trigger,
        run.status,
        run.algorithm_version,
        run.radius_m,
        run.tolerance_s,
        run.max_gap_s,
        run.max_record_id,
        run.fixes_considered,
        run.crimes_considered,
        run.match_count,
        run.started_at,
        run.ended_at,
        run.error,
    )


def batch_summary(
    batch: CrimeBatch, *, with_errors: bool = True, run: CrimeMatchRun | None = None
) -> BatchSummary:
    errors = (
        [
            RowError(e.row, e.field, e.code, e.reason, e.value, e.crime_reference)
            for e in batch.errors
        ]
        if with_errors
        else []
    )
    return BatchSummary(
        batch.id,
        batch.force_code,
        batch.batch_ref,
        batch.file_name,
        batch.received_at,
        batch.status,
        batch.total_rows,
        batch.accepted_rows,
        batch.failed_rows,
        batch.duplicate_rows,
        batch.header_skipped,
        list(batch.file_errors or []),
        errors,
        _run_summary(run) if run else None,
    )


# --- receiving a batch -------------------------------------------------------------------------


def _changed_fields(previous: CrimeVersion, row: CrimeRow) -> list[str]:
    changed = []
    for group, names in _VERSION_FIELDS.items():
        for name in names:
            old, new = getattr(previous, name), getattr(row, name)
            differs = (
                not math.isclose(old, new, abs_tol=1e-7) if isinstance(old, float) else old != new
            )
            if differs:
                changed.append(group)
                break
    return changed


def import_batch(
    session: Session,
    data: bytes,
    *,
    file_name: str,
    principal: Principal | None,
    expected_force: str | None = None,
    match: bool = True,
    params: MatchParams | None = None,
) -> BatchSummary:
    """Store a police file as a batch with its crimes (new versions), then match it.

    A police principal may only send their own force's crimes. The batch is recorded
    whatever its status, so a failed file is visible with its reasons.
    """
    if principal is not None and principal.force_code is not None:
        if expected_force not in (None, principal.force_code):
            raise CrimeError("force", f"you may only send crimes for {principal.force_code}")
        expected_force = principal.force_code
    parsed = parse_crime_csv(
        data,
        force_codes=repo.reference_codes(session, "police_force"),
        crime_types=repo.reference_codes(session, "crime_type"),
        expected_force=expected_force,
    )
    batch = CrimeBatch(
        force_code=parsed.force_code or expected_force,
        batch_ref=parsed.batch_id,
        file_name=file_name[:255],
        file_sha256=hashlib.sha256(data).hexdigest(),
        received_at=utcnow(),
        received_by=principal.username if principal else "system",
        status=parsed.status,
        total_rows=parsed.total_rows,
        accepted_rows=len(parsed.rows),
        failed_rows=parsed.failed_rows,
        header_skipped=parsed.header_skipped,
        file_errors=list(parsed.file_errors),
    )
    batch.errors = [
        CrimeBatchError(
            row=e.row,
            field=e.field,
            code=e.code,
            reason=e.reason,
            value=e.value[:2000],
            crime_reference=e.crime_reference[:100],
        )
        for e in parsed.errors
    ]
    repo.add(session, batch)
    if parsed.rows and parsed.force_code:
        batch.duplicate_rows = _store_versions(session, batch, parsed.force_code, parsed.rows)
    audit.record(
        session,
        principal,
        "crime.batch.receive",
        subject_type="crime_batch",
        subject_id=batch.id,
        detail={"status": batch.status, "rows": batch.total_rows, "file": batch.file_name},
    )
    run = None
    if match and batch.status not in (FAILED, ERROR):
        summary = run_matching(
            session, batch.id, principal=principal, params=params, trigger="auto"
        )
        run = repo.get_run(session, summary.run_id)
    return batch_summary(batch, run=run)


def _store_versions(session: Session, batch: CrimeBatch, force: str, rows: list[CrimeRow]) -> int:
    crimes = repo.find_crimes(session, force, [r.crime_ref for r in rows])
    latest = repo.latest_versions(session, [c.id for c in crimes.values()])
    duplicates = 0
    for r in rows:
        crime = crimes.get(r.crime_ref)
        if crime is None:
            crime = Crime(force_code=force, crime_ref=r.crime_ref)
            session.add(crime)
            session.flush()
        previous = latest.get(crime.id)
        changed = _changed_fields(previous, r) if previous else []
        duplicate = previous is not None and not changed
        duplicates += duplicate
        version_no = 1 if previous is None else previous.version_no + (0 if duplicate else 1)
        session.add(
            CrimeVersion(
                crime_id=crime.id,
                batch_id=batch.id,
                row=r.row,
                version_no=version_no,
                duplicate=duplicate,
                changed_fields=changed,
                crime_type=r.crime_type,
                crime_type_description=r.crime_type_description,
                t_from=r.t_from,
                t_to=r.t_to,
                easting=r.easting,
                northing=r.northing,
                latitude=r.latitude,
                longitude=r.longitude,
                location_source=r.location_source,
                free_text=r.free_text,
            )
        )
    session.flush()
    return duplicates


# --- matching ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonTracks:
    """Fixes regrouped by person (a person may wear two devices over a window)."""

    tracks: TrackSet
    record_id: np.ndarray
    allocation_id: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    info: dict[int, repo.AllocationInfo]


def person_tracks(session: Session, fixes: FixTable) -> PersonTracks:
    allocations = np.unique(fixes.allocation_id)
    info = repo.allocation_info(session, allocations.tolist())
    person_by_allocation = np.array(
        [info[a].person_id if a in info else -1 for a in allocations.tolist()], dtype=np.int64
    )
    person_of = (
        person_by_allocation[np.searchsorted(allocations, fixes.allocation_id)]
        if len(allocations)
        else np.empty(0, dtype=np.int64)
    )
    known = person_of >= 0
    order = np.flatnonzero(known)
    order = order[np.lexsort((fixes.record_id[order], fixes.t_ms[order], person_of[order]))]
    east, north = to_bng(fixes.lon[order], fixes.lat[order])
    keep = np.isfinite(east) & np.isfinite(north)
    order, east, north = order[keep], east[keep], north[keep]
    tracks = TrackSet(
        person_of[order], fixes.t_ms[order], east, north, fixes.accuracy_m[order].astype(float)
    )
    return PersonTracks(
        tracks,
        fixes.record_id[order],
        fixes.allocation_id[order],
        fixes.lat[order],
        fixes.lon[order],
        info,
    )


def _crime_set(versions: list[CrimeVersion]) -> CrimeSet:
    return CrimeSet(
        np.array([v.id for v in versions], dtype=np.int64),
        np.array([v.easting for v in versions], dtype=np.float64),
        np.array([v.northing for v in versions], dtype=np.float64),
        np.array([to_ms(v.t_from) for v in versions], dtype=np.int64),
        np.array([to_ms(v.t_to) for v in versions], dtype=np.int64),
    )


def _ms_time(ms: float) -> dt.datetime:
    return from_ms(round(ms))


def run_matching(
    session: Session,
    batch_id: int,
    *,
    principal: Principal | None,
    params: MatchParams | None = None,
    trigger: str = "manual",
    up_to_record_id: int | None = None,
) -> RunSummary:
    """Match a batch's crimes against the stored tracks and record the run and its matches.

    `up_to_record_id` repeats an earlier run: raw telemetry is append-only, so the fixes with
    ids up to that run's `max_record_id` are the fixes it saw.
    """
    params = params or MatchParams()
    batch = repo.get_batch(session, batch_id, principal)
    if batch is None:
        raise NotFound(f"crime batch {batch_id}")
    pairs = repo.batch_versions(session, batch.id)
    versions = [v for v, _ in pairs]
    started = utcnow()
    run = CrimeMatchRun(
        batch_id=batch.id,
        trigger=trigger,
        status="success",
        algorithm_version=ALGORITHM_VERSION,
        radius_m=params.radius_m,
        tolerance_s=params.tolerance_s,
        max_gap_s=params.max_gap_s,
        requested_by=principal.username if principal else "system",
        started_at=started,
        ended_at=started,
        crimes_considered=len(versions),
    )
    if versions:
        margin = dt.timedelta(seconds=params.tolerance_s + params.max_gap_s)
        allocations = _allocations_in_reach(session, versions, params)
        fixes = (
            load_fixes(
                session,
                start=min(v.t_from for v in versions) - margin,
                end=max(v.t_to for v in versions) + margin,
                allocation_ids=allocations,
            )
            if allocations is None or allocations
            else FixTable()
        )
        if up_to_record_id is not None:
            keep = fixes.record_id <= up_to_record_id
            fixes = FixTable(*(getattr(fixes, f)[keep] for f in _FIX_FIELDS))
        people = person_tracks(session, fixes)
        run.fixes_considered = len(people.tracks)
        run.max_record_id = (
            up_to_record_id
            if up_to_record_id is not None
            else int(fixes.record_id.max())
            if len(fixes)
            else 0
        )
        result = match_crimes(_crime_set(versions), people.tracks, params)
        repo.add(session, run)
        _store_matches(session, run, versions, people, result)
        run.match_count = len(result)
    else:
        repo.add(session, run)
    run.ended_at = utcnow()
    session.flush()
    audit.record(
        session,
        principal,
        "crime.match.run",
        subject_type="crime_batch",
        subject_id=batch.id,
        detail={"run": run.id, "matches": run.match_count, "trigger": trigger},
    )
    return _run_summary(run)


_FIX_FIELDS = ("record_id", "allocation_id", "t_ms", "lat", "lon", "accuracy_m")
# Up to this many crimes a run reads only the people the track boxes put near them; a bigger
# batch reads every fix of its period, which the matcher's own index then sifts faster.
_BOXED_CRIMES = 50


def _allocations_in_reach(
    session: Session, versions: list[CrimeVersion], params: MatchParams
) -> list[int] | None:
    """The allocations whose fixes can match these crimes (see `track_boxes`), or None to
    read every fix of the period."""
    if len(versions) > _BOXED_CRIMES or not track_boxes.serves(params):
        return None
    places = [
        track_boxes.CrimePlace(v.easting, v.northing, to_ms(v.t_from), to_ms(v.t_to))
        for v in versions
    ]
    return track_boxes.candidate_allocations(session, places, params)


def _store_matches(
    session: Session,
    run: CrimeMatchRun,
    versions: list[CrimeVersion],
    people: PersonTracks,
    result: MatchResult,
) -> None:
    if len(result) == 0:
        return
    lon, lat = to_wgs84(result.closest_x, result.closest_y)
    # The device of a match: the one worn at the closest approach (nearest fix in time).
    tracks = people.tracks
    rows: list[CrimeMatch] = []
    for k in range(len(result)):
        owner = int(result.owner[k])
        lo = int(np.searchsorted(tracks.owner, owner, side="left"))
        hi = int(np.searchsorted(tracks.owner, owner, side="right"))
        near = lo + int(
            np.clip(np.searchsorted(tracks.t_ms[lo:hi], result.closest_time_ms[k]), 0, hi - lo - 1)
        )
        alloc = people.info[int(people.allocation_id[near])]
        match = CrimeMatch(
            run_id=run.id,
            crime_version_id=int(versions[int(result.crime_index[k])].id),
            person_id=owner,
            person_ref=alloc.person_ref,
            allocation_id=alloc.allocation_id,
            device_serial=alloc.device_serial,
            closest_distance_m=float(result.closest_distance_m[k]),
            closest_time=_ms_time(float(result.closest_time_ms[k])),
            closest_latitude=float(lat[k]),
            closest_longitude=float(lon[k]),
            first_time_in_radius=_ms_time(float(result.first_time_ms[k])),
            last_time_in_radius=_ms_time(float(result.last_time_ms[k])),
            fixes_in_radius=int(result.fixes_in_radius[k]),
            passes=int(result.passes[k]),
            coverage_pct=float(result.coverage_pct[k]),
            max_accuracy_m=(
                None if math.isnan(result.max_accuracy_m[k]) else float(result.max_accuracy_m[k])
            ),
        )
        version = versions[int(result.crime_index[k])]
        match.positions = [
            CrimeMatchPosition(
                record_id=int(people.record_id[row]),
                label=label,
                t=from_ms(int(tracks.t_ms[row])),
                latitude=float(people.lat[row]),
                longitude=float(people.lon[row]),
                accuracy_m=float(tracks.accuracy_m[row]),
                distance_m=float(
                    math.hypot(tracks.x[row] - version.easting, tracks.y[row] - version.northing)
                ),
            )
            for row, label in result.labels(k)
        ]
        rows.append(match)
    session.add_all(rows)
    session.flush()


# --- reading, exporting and reviewing matches ---------------------------------------------------


def _match_row(record: repo.MatchRecord) -> MatchRow:
    m, v, c, b = record.match, record.version, record.crime, record.batch
    return MatchRow(
        match_id=m.id,
        run_id=m.run_id,
        batch_id=b.id,
        batch_ref=b.batch_ref or "",
        force=c.force_code,
        crime_ref=c.crime_ref,
        crime_type=v.crime_type,
        crime_version_id=v.id,
        t_from=v.t_from,
        t_to=v.t_to,
        crime_latitude=v.latitude,
        crime_longitude=v.longitude,
        person_ref=m.person_ref,
        device=m.device_serial,
        closest_distance_m=m.closest_distance_m,
        closest_time=m.closest_time,
        first_time_in_radius=m.first_time_in_radius,
        last_time_in_radius=m.last_time_in_radius,
        fixes_in_radius=m.fixes_in_radius,
        passes=m.passes,
        coverage_pct=m.coverage_pct,
        max_accuracy_m=m.max_accuracy_m,
        review_state=m.review_state,
        review_reason=m.review_reason,
        authorised=m.authorised_at is not None,
        reviewed_by=m.reviewed_by,
        reviewed_at=m.reviewed_at,
        authorised_by=m.authorised_by,
        authorised_at=m.authorised_at,
    )


def _as_seen_by(session: Session, run: RunSummary, principal: Principal | None) -> RunSummary:
    """A force is told how many of a run's matches were released to it, not how many were
    found."""
    if principal is None or principal.force_code is None:
        return run
    released = sum(repo.review_counts(session, run.run_id, principal).values())
    return dataclasses.replace(run, match_count=released)


def _summary_for(
    session: Session, batch: CrimeBatch, principal: Principal | None, *, with_errors: bool
) -> BatchSummary:
    summary = batch_summary(batch, with_errors=with_errors, run=repo.latest_run(session, batch.id))
    if summary.run is None:
        return summary
    return dataclasses.replace(summary, run=_as_seen_by(session, summary.run, principal))


def list_batches(
    session: Session, principal: Principal | None, *, limit: int = 100, offset: int = 0
) -> list[BatchSummary]:
    return [
        _summary_for(session, b, principal, with_errors=False)
        for b in repo.list_batches(session, principal, limit=limit, offset=offset)
    ]


def count_batches(session: Session, principal: Principal | None) -> int:
    return repo.count_batches(session, principal)


def _batch_in_scope(session: Session, batch_id: int, principal: Principal | None) -> CrimeBatch:
    batch = repo.get_batch(session, batch_id, principal)
    if batch is None:
        raise NotFound(f"crime batch {batch_id}")
    return batch


def get_batch(
    session: Session, batch_id: int, principal: Principal | None, *, with_errors: bool = True
) -> BatchSummary:
    batch = _batch_in_scope(session, batch_id, principal)
    return _summary_for(session, batch, principal, with_errors=with_errors)


def batch_crimes(
    session: Session, batch_id: int, principal: Principal | None, *, limit: int, offset: int = 0
) -> Page[VersionRow]:
    """The crimes a batch carried, in file order, with their version and what changed."""
    batch = _batch_in_scope(session, batch_id, principal)
    rows = [
        VersionRow(
            v.id,
            v.row,
            c.crime_ref,
            v.version_no,
            v.duplicate,
            list(v.changed_fields or []),
            v.crime_type,
            v.crime_type_description,
            v.t_from,
            v.t_to,
            v.easting,
            v.northing,
            v.latitude,
            v.longitude,
            v.location_source,
            v.free_text,
        )
        for v, c in repo.batch_versions(session, batch.id, limit=limit, offset=offset)
    ]
    return Page(rows, repo.count_batch_versions(session, batch.id), offset)


def batch_row_errors(
    session: Session, batch_id: int, principal: Principal | None, *, limit: int, offset: int = 0
) -> Page[RowError]:
    batch = _batch_in_scope(session, batch_id, principal)
    errors = [
        RowError(e.row, e.field, e.code, e.reason, e.value, e.crime_reference)
        for e in repo.batch_errors(session, batch.id, limit=limit, offset=offset)
    ]
    return Page(errors, repo.count_batch_errors(session, batch.id), offset)


def batch_runs(session: Session, batch_id: int, principal: Principal | None) -> list[RunSummary]:
    batch = _batch_in_scope(session, batch_id, principal)
    return [
        _as_seen_by(session, _run_summary(r), principal)
        for r in repo.runs_of_batch(session, batch.id)
    ]


def review_counts(
    session: Session, batch_id: int, principal: Principal | None, run_id: int
) -> dict[str, int]:
    """How many of a run's matches in scope are in each review state (see MatchRow.state)."""
    batch = _batch_in_scope(session, batch_id, principal)
    run = repo.get_run(session, run_id)
    if run is None or run.batch_id != batch.id:
        return {}
    return repo.review_counts(session, run.id, principal)


def batch_matches(
    session: Session,
    batch_id: int,
    principal: Principal | None,
    *,
    run_id: int | None = None,
    purpose: str | None = None,
    action: str = "crime.match.view",
    review_state: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[MatchRow]:
    """The matches of a batch's latest run (or a named run), optionally one review state
    (see MatchRow.state) and one page of them, audited as a view of the people shown."""
    batch = _batch_in_scope(session, batch_id, principal)
    run = repo.get_run(session, run_id) if run_id else repo.latest_run(session, batch.id)
    if run is None or run.batch_id != batch.id:
        rows: list[MatchRow] = []
    else:
        found = repo.matches_of_run(
            session, run.id, principal, review_state=review_state, limit=limit, offset=offset
        )
        rows = [_match_row(r) for r in found]
    detail: dict[str, object] = {
        "run": run.id if run else None,
        "matches": len(rows),
        "people": sorted({r.person_ref for r in rows}),
    }
    if review_state:
        detail["review_state"] = review_state
    audit.record(
        session,
        principal,
        action,
        subject_type="crime_batch",
        subject_id=batch.id,
        purpose=purpose,
        detail=detail,
    )
    return rows


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def matches_csv(rows: list[MatchRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(MATCH_CSV_COLUMNS)
    for r in rows:
        writer.writerow(
            [
                r.batch_ref,
                r.force,
                r.crime_ref,
                r.crime_type,
                r.person_ref,
                r.device,
                f"{r.closest_distance_m:.2f}",
                _iso(r.closest_time),
                _iso(r.first_time_in_radius),
                _iso(r.last_time_in_radius),
                r.fixes_in_radius,
                r.passes,
                f"{r.coverage_pct:.1f}",
                "" if r.max_accuracy_m is None else f"{r.max_accuracy_m:.1f}",
            ]
        )
    return out.getvalue()


def export_matches(
    session: Session, batch_id: int, principal: Principal | None, *, purpose: str | None = None
) -> str:
    rows = batch_matches(session, batch_id, principal, purpose=purpose, action="crime.match.export")
    return matches_csv(rows)


def get_match(session: Session, match_id: int, principal: Principal | None) -> MatchRow:
    record = repo.get_match(session, match_id, principal)
    if record is None:
        raise NotFound(f"crime match {match_id}")
    audit.record(
        session,
        principal,
        "crime.match.view",
        subject_type="crime_match",
        subject_id=match_id,
        detail={"person": record.match.person_ref, "crime": record.crime.crime_ref},
    )
    return _match_row(record)


def review_match(
    session: Session, match_id: int, principal: Principal, decision: str, reason: str
) -> MatchRow:
    """A hub caseworker qualifies or dismisses a match, always with a reason."""
    if decision not in REVIEW_DECISIONS:
        raise CrimeError("decision", "must be qualified or dismissed")
    if not reason.strip():
        raise CrimeError("reason", "give the reason for the decision")
    record = repo.get_match(session, match_id, principal)
    if record is None:
        raise NotFound(f"crime match {match_id}")
    match = record.match
    if match.authorised_at is not None:
        raise CrimeError("decision", "the match is already authorised")
    match.review_state = decision
    match.review_reason = reason.strip()
    match.reviewed_by = principal.username
    match.reviewed_at = utcnow()
    session.flush()
    audit.record(
        session,
        principal,
        "crime.match.review",
        subject_type="crime_match",
        subject_id=match.id,
        purpose=reason.strip(),
        detail={"decision": decision},
    )
    return _match_row(record)


def authorise_match(session: Session, match_id: int, principal: Principal) -> MatchRow:
    """A hub manager authorises a qualified match for release to the force."""
    record = repo.get_match(session, match_id, principal)
    if record is None:
        raise NotFound(f"crime match {match_id}")
    match = record.match
    if match.review_state != "qualified":
        raise CrimeError("review_state", "only a qualified match can be authorised")
    if match.reviewed_by == principal.username:
        raise CrimeError("authorised_by", "the reviewer cannot also authorise the match")
    match.authorised_by = principal.username
    match.authorised_at = utcnow()
    session.flush()
    audit.record(
        session, principal, "crime.match.authorise", subject_type="crime_match", subject_id=match.id
    )
    return _match_row(record)


# --- one named person ---------------------------------------------------------------------------


def where_was_person(
    session: Session,
    person_ref: str,
    crime_ref: str,
    principal: Principal | None,
    *,
    force_code: str | None = None,
    params: MatchParams | None = None,
    purpose: str | None = None,
) -> WhereAnswer:
    """Where a named person was during a crime's window: near, away (with coverage) or no data."""
    params = params or MatchParams()
    found = repo.crime_versions(session, crime_ref, principal, force_code)
    if not found:
        raise NotFound(f"crime {crime_ref}")
    forces = {c.force_code for _, c in found}
    if len(forces) > 1:
        raise CrimeError("force", "several forces use this reference; name the force")
    version, crime = found[0]
    person_id, allocations = repo.person_allocations(session, person_ref)
    if person_id is None:
        raise NotFound(f"person {person_ref}")
    margin = dt.timedelta(seconds=params.tolerance_s + params.max_gap_s)
    fixes = (
        load_fixes(
            session,
            start=version.t_from - margin,
            end=version.t_to + margin,
            allocation_ids=allocations,
        )
        if allocations
        else FixTable()
    )
    people = person_tracks(session, fixes)
    answer = where_was(people.tracks, _crime_set([version]), params)
    audit.record(
        session,
        principal,
        "crime.where_was",
        subject_type="person",
        subject_id=person_ref,
        purpose=purpose,
        detail={"crime": crime.crime_ref, "force": crime.force_code, "verdict": answer.verdict},
    )
    return WhereAnswer(
        person_ref=person_ref,
        crime_ref=crime.crime_ref,
        force=crime.force_code,
        verdict=answer.verdict,
        radius_m=answer.radius_m,
        closest_distance_m=answer.closest_distance_m,
        closest_time=None if answer.closest_time_ms is None else _ms_time(answer.closest_time_ms),
        coverage_pct=answer.coverage_pct,
        fixes_in_window=answer.fixes_in_window,
        window_start=_ms_time(answer.window_start_ms),
        window_end=_ms_time(answer.window_end_ms),
        uncovered=[(_ms_time(a), _ms_time(b)) for a, b in answer.uncovered],
    )
