"""Service performance for a period: the alert path, overdue work and crime mapping."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from tagwatch.reports import repository

if TYPE_CHECKING:
    from tagwatch.reports.statistics import Period

NOT_YET_AVAILABLE = "not yet available"
# Stage name -> the alert's stored delay from the violation (alerts.models.DELAY_STEPS).
ALERT_PATH = {
    "violation_to_alert": "event_to_raised_us",
    "violation_to_acknowledgement": "event_to_acknowledged_us",
    "violation_to_outcome": "event_to_outcome_us",
}


def _percentiles(seconds: Sequence[float] | npt.NDArray[np.float64]) -> dict[str, Any]:
    if not len(seconds):
        return {"count": 0, "median_seconds": None, "p95_seconds": None}
    p50, p95 = np.percentile(np.asarray(seconds, dtype=np.float64), [50, 95])
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
    session: Session, period: Period, alerts: repository.RaisedAlerts
) -> dict[str, Any]:
    """`alerts` are those raised in the period (repository.alerts_raised)."""
    opens, closes = period.opens, period.closes
    return {
        "alert_path": {
            stage: _percentiles(alerts.delays[delay] / 1e6) for stage, delay in ALERT_PATH.items()
        },
        "alerts_without_outcome_past_deadline": repository.alerts_overdue(session, closes),
        "orders_awaiting_fitting_past_deadline": repository.orders_awaiting_fitting_overdue(
            session, closes
        ),
        "crime_mapping": repository.crime_throughput(session, opens, closes),
        "data_request_turnaround": data_request_turnaround(session, period),
    }
