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
ALERT_PATH = {
    "violation_to_alert": "raised_at",
    "violation_to_acknowledgement": "acknowledged_at",
    "violation_to_outcome": "outcome_at",
}


def _percentiles(seconds: list[float]) -> dict[str, Any]:
    if not seconds:
        return {"count": 0, "median_seconds": None, "p95_seconds": None}
    p50, p95 = np.percentile(np.asarray(seconds), [50, 95])
    return {"count": len(seconds), "median_seconds": round(float(p50), 1), "p95_seconds": round(float(p95), 1)}


def data_request_turnaround() -> str | dict[str, Any]:
    # The location data request service reports here once it keeps its records.
    if importlib.util.find_spec("tagwatch.requests.models") is None:
        return NOT_YET_AVAILABLE
    return NOT_YET_AVAILABLE


def service_performance(session: Session, period: Period) -> dict[str, Any]:
    opens, closes = period.opens, period.closes
    return {
        "alert_path": {
            stage: _percentiles(repository.alert_path_seconds(session, opens, closes, stop))
            for stage, stop in ALERT_PATH.items()
        },
        "alerts_without_outcome_past_deadline": repository.alerts_overdue(session, closes),
        "orders_awaiting_fitting_past_deadline": repository.orders_awaiting_fitting_overdue(session, closes),
        "crime_mapping": repository.crime_throughput(session, opens, closes),
        "data_request_turnaround": data_request_turnaround(),
    }
