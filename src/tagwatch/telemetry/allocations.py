"""Which allocation a device's record belongs to: the one whose [fitted, removed) holds its time."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

OPEN_ENDED = 2**62
NONE = -1  # `find_many`'s answer for a record no allocation covers


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

    def find_many(self, serials: Sequence[str], t_ms: NDArray[np.int64]) -> NDArray[np.int64]:
        """`find` for many records at once (NONE where no allocation covers one)."""
        distinct: dict[str, int] = {}
        codes = np.array([distinct.setdefault(s, len(distinct)) for s in serials], np.int64)
        return self.find_coded(list(distinct), codes, t_ms)

    def find_coded(
        self, serials: Sequence[str], device: NDArray[np.int64], t_ms: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        """`find_many` for records whose device is given as an index into `serials`: the
        records are grouped by device and each device's group is matched with one binary
        search over its spans."""
        slot = {serial: index for index, serial in enumerate(self._spans)}
        to_slot = np.array([slot.get(serial, -1) for serial in serials], dtype=np.int64)
        codes = to_slot[device]
        found = np.full(codes.shape[0], NONE, dtype=np.int64)
        if not codes.shape[0]:
            return found
        order = np.argsort(codes, kind="stable")
        sorted_codes = codes[order]
        bounds = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1], True])
        spans = list(self._spans.values())
        for low, high in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            code = int(sorted_codes[low])
            if code < 0:
                continue
            block = order[low:high]
            fitted, ends, ids = np.array(spans[code], dtype=np.int64).T
            times = t_ms[block]
            at = np.searchsorted(fitted, times, side="right") - 1
            inside = (at >= 0) & (times < ends[np.maximum(at, 0)])
            found[block[inside]] = ids[at[inside]]
        return found
