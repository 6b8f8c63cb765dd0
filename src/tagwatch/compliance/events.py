"""Events compliance publishes for downstream domains (alerts) to handle."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class ViolationsChanged:
    """Violations were found, changed or withdrawn by an evaluation.

    `opened`: new violations (or withdrawn ones found again); `updated`: an existing
    violation's end, status or evidence changed; `closed`: violations withdrawn because the
    records no longer support them. A violation that ends stays a violation: it is `updated`.
    """

    opened: list[int]
    updated: list[int]
    closed: list[int]
    evaluated_at: dt.datetime

    def __bool__(self) -> bool:
        return bool(self.opened or self.updated or self.closed)
