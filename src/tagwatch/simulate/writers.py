"""Writing simulated records: NDJSON (gzipped when the path ends .gz) and the GPS CSV form."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import orjson

CSV_HEADER = b"device,time,lat,lon,accuracy_m,seq\n"
_BATCH = 20_000


def _open(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        # Level 1: several times faster than the default for a few per cent more bytes.
        return gzip.open(path, "wb", compresslevel=1)  # type: ignore[return-value]
    return open(path, "wb", buffering=1 << 20)


def write_ndjson(records: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write one JSON object per line; returns how many. Lines go out in batches."""
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    count = 0
    batch: list[bytes] = []
    with _open(Path(path)) as out:
        for record in records:
            batch.append(dumps(record, option=newline))
            if len(batch) >= _BATCH:
                out.write(b"".join(batch))
                count += len(batch)
                batch.clear()
        out.write(b"".join(batch))
        count += len(batch)
    return count


def write_gps_csv(records: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write the `gps` records in the CSV form (`device,time,lat,lon,accuracy_m,seq`)."""
    count = 0
    with _open(Path(path)) as raw:
        out = io.TextIOWrapper(raw, encoding="utf-8", newline="", write_through=False)
        out.write(CSV_HEADER.decode())
        lines: list[str] = []
        for r in records:
            if r["type"] != "gps":
                continue
            seq = r.get("seq", "")
            lines.append(
                f"{r['device']},{r['time']},{r['lat']},{r['lon']},{r['accuracy_m']},{seq}\n"
            )
            if len(lines) >= _BATCH:
                out.write("".join(lines))
                count += len(lines)
                lines.clear()
        out.write("".join(lines))
        count += len(lines)
        out.flush()
        out.detach()
    return count
