"""Feed records for the telemetry tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tagwatch.telemetry.feed import format_time_ms

T0 = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
T0_MS = int(T0.timestamp() * 1000)
NOW = T0 + dt.timedelta(days=1)


def fix(
    device: str,
    minute: float,
    *,
    lat: float = 51.5,
    lon: float = -0.12,
    seq: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A gps record `minute` minutes after T0."""
    record: dict[str, Any] = {
        "device": device,
        "type": "gps",
        "time": format_time_ms(T0_MS + int(minute * 60_000)),
        "lat": lat,
        "lon": lon,
        "accuracy_m": 5.0,
        "source": "gnss",
    }
    if seq is not None:
        record["seq"] = seq
    record.update(extra)
    return record


def status(device: str, minute: float, **fields: Any) -> dict[str, Any]:
    return {
        "device": device,
        "type": "status",
        "time": format_time_ms(T0_MS + int(minute * 60_000)),
        **(fields or {"battery_pct": 80}),
    }
