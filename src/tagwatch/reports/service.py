"""Use cases of management information: statistics, exports, data quality. Never commits."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from tagwatch.access.audit import record
from tagwatch.access.principal import Principal
from tagwatch.reports import ods
from tagwatch.reports.statistics import Period, Publication, compute

DEFAULT_THRESHOLD = 5
FORMATS = {
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "csv": "text/csv; charset=utf-8",
}


def statistics(
    session: Session, period: Period, *, published: bool, threshold: int = DEFAULT_THRESHOLD
) -> Publication:
    return compute(session, period, threshold=threshold if published else None)


def export(
    session: Session,
    principal: Principal | None,
    period: Period,
    fmt: str,
    *,
    published: bool,
    threshold: int = DEFAULT_THRESHOLD,
) -> bytes:
    """The statistics as a file; every export is audited."""
    if fmt not in FORMATS:
        raise ValueError(f"format: must be one of {', '.join(FORMATS)}, not {fmt!r}")
    publication = statistics(session, period, published=published, threshold=threshold)
    content = ods.build_ods(publication) if fmt == "ods" else ods.build_csv(publication).encode()
    record(
        session,
        principal,
        "report.export",
        subject_type="statistics",
        subject_id=f"{period.start}..{period.end}",
        detail={
            "format": fmt,
            "published": published,
            "threshold": publication.threshold,
            "tables": len(publication.tables),
        },
    )
    return content


def parse_period(start: str | dt.date, end: str | dt.date) -> Period:
    def as_date(name: str, value: str | dt.date) -> dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name}: must be a date like 2026-01-31, not {value!r}") from None

    return Period(as_date("from", start), as_date("to", end))
