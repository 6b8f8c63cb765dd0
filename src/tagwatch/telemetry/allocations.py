"""Which allocation a device's record belongs to: the one whose [fitted, removed) holds its time."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable

OPEN_ENDED = 2**62


class AllocationIndex:
    """Allocation spans per device serial, for fast look-ups while ingesting."""

    def __init__(self, spans: Iterable[tuple[str, int, int, int | None]]) -> None:
        """`spans`: (device serial, allocation id, fitted ms, removed ms or None)."""
        per_device: dict[str, list[tuple[int, int, int]]] = {}
        for serial, allocation_id, fitted_ms, removed_ms in spans:
            end = OPEN_ENDED if removed_ms is None else removed_ms
            per_device.setdefault(serial, []).append((fitted_ms, end, allocation_id))
        self._starts: dict[str, list[int]] = {}
        self._spans: dict[str, list[tuple[int, int, int]]] = {}
        for serial, spans_of_device in per_device.items():
            spans_of_device.sort()
            self._spans[serial] = spans_of_device
            self._starts[serial] = [span[0] for span in spans_of_device]

    def find(self, serial: str, t_ms: int) -> int | None:
        spans = self._spans.get(serial)
        if spans is None:
            return None
        if len(spans) == 1:
            fitted, end, allocation_id = spans[0]
            return allocation_id if fitted <= t_ms < end else None
        index = bisect_right(self._starts[serial], t_ms) - 1
        if index < 0:
            return None
        _fitted, end, allocation_id = spans[index]
        return allocation_id if t_ms < end else None
