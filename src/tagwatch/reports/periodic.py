"""The daily data quality snapshot."""

from __future__ import annotations

from tagwatch.background import PeriodicTask
from tagwatch.reports.dataquality import take_snapshot

TASKS = [PeriodicTask("reports.dq_snapshot", 24 * 3600, take_snapshot)]
