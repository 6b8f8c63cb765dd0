"""Simulator throughput: one day of feed for a cohort, written to a temporary NDJSON file.

Prints one JSON object. `seconds` is wall-clock time for generating and writing the feed
(the cohort is timed apart); `cpu_seconds` is this process's CPU time, which a busy machine
does not inflate. The comparison is the national load the platform plans for: 1,000
GPS fixes a second (60,000 tags at one fix a minute); the ratio says how many times faster
than real time at that load the simulator produces (and writes) fixes.

    .venv/bin/python bench/simulate.py [--people 2000] [--days 1] [--seed 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tagwatch.simulate.cohort import generate_cohort
from tagwatch.simulate.devices import simulate_feed
from tagwatch.simulate.writers import write_ndjson

NATIONAL_FIXES_PER_SECOND = 1_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=2_000)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    start = dt.date(2026, 11, 23)
    began = time.perf_counter()
    cohort = generate_cohort(args.people, args.seed, start)
    cohort_seconds = time.perf_counter() - began
    counts = {"fixes": 0, "records": 0}

    def counted(records: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for record in records:
            counts["records"] += 1
            if record["type"] == "gps":
                counts["fixes"] += 1
            yield record

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "feed.ndjson"
        began, cpu_began = time.perf_counter(), time.process_time()
        midnight = dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC)
        write_ndjson(counted(simulate_feed(cohort, midnight, args.days, args.seed)), path)
        seconds = time.perf_counter() - began
        cpu_seconds = time.process_time() - cpu_began
        size = path.stat().st_size
    rate = counts["fixes"] / seconds
    print(
        json.dumps(
            {
                "people": args.people,
                "days": args.days,
                "fixes": counts["fixes"],
                "records": counts["records"],
                "bytes": size,
                "cohort_seconds": round(cohort_seconds, 2),
                "seconds": round(seconds, 2),
                "cpu_seconds": round(cpu_seconds, 2),
                "fixes_per_second": round(rate),
                "fixes_per_cpu_second": round(counts["fixes"] / cpu_seconds),
                "records_per_second": round(counts["records"] / seconds),
                "comparison": "national load of 1,000 GPS fixes/s (60,000 tags, one fix a minute)",
                "ratio": round(rate / NATIONAL_FIXES_PER_SECOND, 1),
                "ratio_cpu": round(counts["fixes"] / cpu_seconds / NATIONAL_FIXES_PER_SECOND, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
