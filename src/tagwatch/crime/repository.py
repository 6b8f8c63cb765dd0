"""All crime-mapping SQL. Force scoping is applied here: a principal with a `force_code`
(police) sees only their force's batches, and of the matches only those qualified and
authorised by the hub."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from tagwatch.access.principal import Principal
from tagwatch.cases.models import Allocation, Device, Person, ReferenceValue
from tagwatch.crime.models import (
    Crime,
    CrimeBatch,
    CrimeBatchError,
    CrimeMatch,
    CrimeMatchPosition,
    CrimeMatchRun,
    CrimeVersion,
)

_Rows = TypeVar("_Rows")


def _scope_batches(query: Select[_Rows], principal: Principal | None) -> Select[_Rows]:
    if principal is not None and principal.force_code is not None:
        query = query.where(CrimeBatch.force_code == principal.force_code)
    return query


def reference_codes(session: Session, kind: str) -> set[str] | None:
    """Active codes of a reference list; None when the list is not in the database."""
    codes = set(
        session.scalars(
            select(ReferenceValue.code).where(
                ReferenceValue.kind == kind, ReferenceValue.active.is_(True)
            )
        )
    )
    return codes or None


# --- batches and crimes ----------------------------------------------------------------------


def add(session: Session, row: object) -> None:
    session.add(row)
    session.flush()


def get_batch(session: Session, batch_id: int, principal: Principal | None) -> CrimeBatch | None:
    query = _scope_batches(select(CrimeBatch).where(CrimeBatch.id == batch_id), principal)
    return session.scalars(query).one_or_none()


def list_batches(
    session: Session, principal: Principal | None, *, limit: int = 100, offset: int = 0
) -> list[CrimeBatch]:
    query = _scope_batches(
        select(CrimeBatch).order_by(CrimeBatch.received_at.desc(), CrimeBatch.id.desc()),
        principal,
    )
    return list(session.scalars(query.limit(limit).offset(offset)))


def count_batches(session: Session, principal: Principal | None) -> int:
    query = _scope_batches(select(func.count()).select_from(CrimeBatch), principal)
    return int(session.scalar(query) or 0)


def batch_errors(
    session: Session, batch_id: int, *, limit: int | None = None, offset: int = 0
) -> list[CrimeBatchError]:
    query = (
        select(CrimeBatchError)
        .where(CrimeBatchError.batch_id == batch_id)
        .order_by(CrimeBatchError.row, CrimeBatchError.id)
    )
    return list(session.scalars(query.limit(limit).offset(offset)))


def count_batch_errors(session: Session, batch_id: int) -> int:
    query = select(func.count()).where(CrimeBatchError.batch_id == batch_id)
    return int(session.scalar(query) or 0)


def find_crime(session: Session, force_code: str, crime_ref: str) -> Crime | None:
    return session.scalars(
        select(Crime).where(Crime.force_code == force_code, Crime.crime_ref == crime_ref)
    ).one_or_none()


def find_crimes(session: Session, force_code: str, refs: Sequence[str]) -> dict[str, Crime]:
    found: dict[str, Crime] = {}
    for offset in range(0, len(refs), 500):
        part = list(refs[offset : offset + 500])
        for crime in session.scalars(
            select(Crime).where(Crime.force_code == force_code, Crime.crime_ref.in_(part))
        ):
            found[crime.crime_ref] = crime
    return found


def latest_versions(session: Session, crime_ids: Sequence[int]) -> dict[int, CrimeVersion]:
    latest: dict[int, CrimeVersion] = {}
    for offset in range(0, len(crime_ids), 500):
        part = list(crime_ids[offset : offset + 500])
        newest = (
            select(func.max(CrimeVersion.id))
            .where(CrimeVersion.crime_id.in_(part))
            .group_by(CrimeVersion.crime_id)
        )
        for version in session.scalars(select(CrimeVersion).where(CrimeVersion.id.in_(newest))):
            latest[version.crime_id] = version
    return latest


def batch_versions(
    session: Session, batch_id: int, *, limit: int | None = None, offset: int = 0
) -> list[tuple[CrimeVersion, Crime]]:
    rows = session.execute(
        select(CrimeVersion, Crime)
        .join(Crime, Crime.id == CrimeVersion.crime_id)
        .where(CrimeVersion.batch_id == batch_id)
        .order_by(CrimeVersion.row)
        .limit(limit)
        .offset(offset)
    )
    return list(rows)


def count_batch_versions(session: Session, batch_id: int) -> int:
    query = select(func.count()).where(CrimeVersion.batch_id == batch_id)
    return int(session.scalar(query) or 0)


def crime_versions(
    session: Session, crime_ref: str, principal: Principal | None, force_code: str | None = None
) -> list[tuple[CrimeVersion, Crime]]:
    query = (
        select(CrimeVersion, Crime)
        .join(Crime, Crime.id == CrimeVersion.crime_id)
        .where(Crime.crime_ref == crime_ref)
        .order_by(CrimeVersion.id.desc())
    )
    if force_code is not None:
        query = query.where(Crime.force_code == force_code)
    if principal is not None and principal.force_code is not None:
        query = query.where(Crime.force_code == principal.force_code)
    return list(session.execute(query))


# --- runs and matches ------------------------------------------------------------------------


def latest_run(session: Session, batch_id: int) -> CrimeMatchRun | None:
    """The run consumers use: the last to finish, then the highest id."""
    return session.scalars(
        select(CrimeMatchRun)
        .where(CrimeMatchRun.batch_id == batch_id, CrimeMatchRun.status == "success")
        .order_by(CrimeMatchRun.ended_at.desc(), CrimeMatchRun.id.desc())
        .limit(1)
    ).one_or_none()


def get_run(session: Session, run_id: int) -> CrimeMatchRun | None:
    return session.get(CrimeMatchRun, run_id)


def runs_of_batch(session: Session, batch_id: int) -> list[CrimeMatchRun]:
    return list(
        session.scalars(
            select(CrimeMatchRun)
            .where(CrimeMatchRun.batch_id == batch_id)
            .order_by(CrimeMatchRun.id.desc())
        )
    )


@dataclass(frozen=True)
class MatchRecord:
    match: CrimeMatch
    version: CrimeVersion
    crime: Crime
    batch: CrimeBatch


def _scope_matches(query: Select, principal: Principal | None) -> Select:  # type: ignore[type-arg]
    if principal is not None and principal.force_code is not None:
        query = query.where(
            CrimeBatch.force_code == principal.force_code,
            CrimeMatch.review_state == "qualified",
            CrimeMatch.authorised_at.is_not(None),
        )
    return query


def _match_query() -> Select:  # type: ignore[type-arg]
    return (
        select(CrimeMatch, CrimeVersion, Crime, CrimeBatch)
        .join(CrimeVersion, CrimeVersion.id == CrimeMatch.crime_version_id)
        .join(Crime, Crime.id == CrimeVersion.crime_id)
        .join(CrimeBatch, CrimeBatch.id == CrimeVersion.batch_id)
    )


def _with_review_state(query: Select, review_state: str | None) -> Select:  # type: ignore[type-arg]
    """`authorised` is a qualified match a manager has authorised; `qualified` one still
    waiting for that."""
    if review_state == "authorised":
        return query.where(CrimeMatch.authorised_at.is_not(None))
    if review_state == "qualified":
        return query.where(
            CrimeMatch.review_state == "qualified", CrimeMatch.authorised_at.is_(None)
        )
    if review_state is not None:
        return query.where(CrimeMatch.review_state == review_state)
    return query


def matches_of_run(
    session: Session,
    run_id: int,
    principal: Principal | None,
    *,
    review_state: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[MatchRecord]:
    query = _scope_matches(
        _with_review_state(_match_query().where(CrimeMatch.run_id == run_id), review_state)
        .order_by(Crime.crime_ref, CrimeMatch.person_ref, CrimeMatch.id)
        .limit(limit)
        .offset(offset),
        principal,
    )
    return [MatchRecord(*row) for row in session.execute(query)]


def review_counts(session: Session, run_id: int, principal: Principal | None) -> dict[str, int]:
    """How many of a run's matches (in scope) are unreviewed, qualified (waiting for
    authorisation), authorised and dismissed."""
    state = case(
        (CrimeMatch.authorised_at.is_not(None), "authorised"), else_=CrimeMatch.review_state
    )
    query = _scope_matches(
        select(state, func.count())
        .select_from(CrimeMatch)
        .join(CrimeVersion, CrimeVersion.id == CrimeMatch.crime_version_id)
        .join(CrimeBatch, CrimeBatch.id == CrimeVersion.batch_id)
        .where(CrimeMatch.run_id == run_id)
        .group_by(state),
        principal,
    )
    return {str(name): int(count) for name, count in session.execute(query)}


def get_match(session: Session, match_id: int, principal: Principal | None) -> MatchRecord | None:
    query = _scope_matches(_match_query().where(CrimeMatch.id == match_id), principal)
    row = session.execute(query).one_or_none()
    return MatchRecord(*row) if row else None


def positions(session: Session, match_id: int) -> list[CrimeMatchPosition]:
    return list(
        session.scalars(
            select(CrimeMatchPosition)
            .where(CrimeMatchPosition.match_id == match_id)
            .order_by(CrimeMatchPosition.t, CrimeMatchPosition.id)
        )
    )


# --- people and devices ------------------------------------------------------------------------


@dataclass(frozen=True)
class AllocationInfo:
    allocation_id: int
    person_id: int
    person_ref: str
    device_serial: str


def allocation_info(session: Session, allocation_ids: Sequence[int]) -> dict[int, AllocationInfo]:
    found: dict[int, AllocationInfo] = {}
    ids = sorted({int(a) for a in allocation_ids})
    for offset in range(0, len(ids), 500):
        part = ids[offset : offset + 500]
        rows = session.execute(
            select(Allocation.id, Allocation.person_id, Person.ref, Device.serial)
            .join(Person, Person.id == Allocation.person_id)
            .join(Device, Device.id == Allocation.device_id)
            .where(Allocation.id.in_(part))
        )
        for alloc_id, person_id, ref, serial in rows:
            found[alloc_id] = AllocationInfo(alloc_id, person_id, ref, serial)
    return found


def person_allocations(session: Session, person_ref: str) -> tuple[int | None, list[int]]:
    person_id = session.scalars(select(Person.id).where(Person.ref == person_ref)).one_or_none()
    if person_id is None:
        return None, []
    ids = session.scalars(select(Allocation.id).where(Allocation.person_id == person_id))
    return person_id, sorted(ids)
