"""Shared constants of the crime tests: the time and the place of the scene."""

from __future__ import annotations

import datetime as dt

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
# A crime scene in Camden on the national grid.
SCENE = (529_000.0, 184_000.0)
