"""Replay simulated records to a running server as they would arrive, for demonstrations.

Records are sent when they would be uploaded (scaled by `speed`), a second's worth per
request, to `POST {base_url}/api/v1/telemetry` as NDJSON. Wearers' streams are merged by
upload time, so every wearer's day is in memory at once: meant for demonstration cohorts.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson

from tagwatch.simulate.devices import simulate_blocks


def _by_upload(
    cohort: dict[str, Any], start: dt.datetime, days: float, seed: int
) -> Iterator[tuple[float, dict[str, Any]]]:
    """Every wearer's records merged into upload order, one simulated day at a time."""
    pending: list[tuple[float, dict[str, Any]]] = []
    current: dt.date | None = None
    for day, block in simulate_blocks(cohort, start, days, seed):
        if day != current and pending:
            pending.sort(key=lambda pair: pair[0])
            yield from pending
            pending = []
        current = day
        pending.extend(block)
    pending.sort(key=lambda pair: pair[0])
    yield from pending


def feed_live(
    cohort: dict[str, Any],
    base_url: str,
    token: str,
    speed: float = 1.0,
    *,
    start: dt.datetime | None = None,
    days: float = 1.0,
    seed: int = 1,
    resume_at: dt.datetime | None = None,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_batch: Callable[[int, httpx.Response], None] | None = None,
) -> int:
    """Send records in real time (or `speed` times faster); returns how many were sent.

    `start` defaults to now, so violations appear while you watch. `resume_at` continues a run
    whose earlier part was delivered another way (the demo's history file): records uploaded
    before it are not sent, and sequence numbers carry on from that run, so nothing collides
    with what was already stored.
    """
    if speed <= 0:
        raise ValueError("speed must be positive")
    start = start or dt.datetime.now(dt.UTC).replace(microsecond=0)
    own = client is None
    http = client or httpx.Client(timeout=30.0)
    url = base_url.rstrip("/") + "/api/v1/telemetry"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    wall0, sim0 = time.monotonic(), (resume_at or start).timestamp()
    sent = 0
    batch: list[bytes] = []
    batch_second: int | None = None

    def flush() -> None:
        nonlocal sent
        if not batch:
            return
        response = http.post(url, content=b"".join(batch), headers=headers)
        response.raise_for_status()
        sent += len(batch)
        if on_batch is not None:
            on_batch(len(batch), response)
        batch.clear()

    try:
        for upload, record in _by_upload(cohort, start, days, seed):
            if upload < sim0:
                continue
            second = int(upload)
            if batch_second is not None and second != batch_second:
                flush()
                wait = (second - sim0) / speed - (time.monotonic() - wall0)
                if wait > 0:
                    sleep(wait)
            batch_second = second
            batch.append(orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE))
        flush()
    finally:
        if own:
            http.close()
    return sent
