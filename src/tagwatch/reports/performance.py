"""Service performance for a period: the alert path, overdue work and crime mapping."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.orm import Session

from tagwatch.reports import repository

if TYPE_CHECKING:
    from tagwatch.reports.statistics import Period

NOT_YET_AVAILABLE = "not yet available"
# Stage name -> position of its seconds in a row of repository.alerts_raised.
ALERT_PATH = {"violation_to_alert": 2, "violation_to_acknowledgement": 3, "violation_to_outcome": 4}


def _percentiles(seconds: list[float]) -> dict[str, Any]:
    if not seconds:
        return {"count": 0, "median_seconds": None, "p95_seconds": None}
    p50, p95 = np.percentile(np.asarray(seconds), [50, 95])
    return {
        "count": len(seconds),
        "median_seconds": round(float(p50), 1),
        "p95_seconds": round(float(p95), 1),
    }


def data_request_turnaround(session: Session, period: Period) -> str | dict[str, Any]:
    """Time from a location data request to its decision and to its data, where kept."""
    if importlib.util.find_spec("tagwatch.requests.models") is None:
        return NOT_YET_AVAILABLE
    return {
        stage: _percentiles(repository.request_seconds(session, period.opens, period.closes, stop))
        for stage, stop in (
            ("request_to_decision", "decided_at"),
            ("request_to_data", "fulfilled_at"),
        )
    }


def service_performance(
    session: Session, period: Period, alerts: list[tuple[Any, ...]]
) -> dict[str, Any]:
    """`alerts` are the period's rows from repository.alerts_raised."""
    opens, closes = period.opens, period.closes
    about_violations = [row for row in alerts if row[1]]
    return {
        "alert_path": {
            stage: _percentiles([row[at] for row in about_violations if row[at] is not None])
            for stage, at in ALERT_PATH.items()
        },
        "alerts_without_outcome_past_deadline": repository.alerts_overdue(session, closes),
        "orders_awaiting_fitting_past_deadline": repository.orders_awaiting_fitting_overdue(
            session, closes
        ),
        "crime_mapping": repository.crime_throughput(session, opens, closes),
        "data_request_turnaround": data_request_turnaround(session, period),
    }
