"""Turn what a channel receives (an HTTP body, an MQTT payload, a file) into pipeline items.

Positions: NDJSON and CSV records are numbered by line (1-based, the CSV header is line 1);
the elements of a JSON array by index (0-based). Blank lines are not records and are skipped.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import orjson

from tagwatch.telemetry.columns import Item
from tagwatch.telemetry.feed import (
    FieldError,
    csv_columns,
    parse_csv_row,
    parse_line,
    parse_object,
)

GZIP_MAGIC = b"\x1f\x8b"


def items_from_ndjson(lines: Iterable[bytes], first_line: int = 1, skip: int = 0) -> Iterator[Item]:
    """The records of NDJSON lines; the first `skip` of them left out, unparsed."""
    for number, line in enumerate(lines, start=first_line):
        if line.strip():
            if skip:
                skip -= 1
                continue
            # Parsed without its line ending, so an error reads the same on every channel.
            record = line.rstrip(b"\r\n")
            yield Item(number, record, parse_line(record))


def items_from_body(body: bytes) -> list[Item]:
    """An HTTP body: a JSON array, NDJSON, or one JSON object (on one line or several)."""
    stripped = body.lstrip()
    if stripped.startswith(b"["):
        try:
            values = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            return [Item(0, body, [FieldError("body", f"is not a valid JSON array ({exc})")])]
        return [
            Item(index, orjson.dumps(value), parse_object(value))
            for index, value in enumerate(values)
        ]
    if stripped.startswith(b"{") and b"\n" in stripped.rstrip():
        # One record spread over several lines (pretty-printed) rather than NDJSON.
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return [Item(1, body, parse_object(value))]
    return list(items_from_ndjson(body.splitlines()))


def items_from_message(
    payload: bytes, *, device: str | None = None, record_type: str | None = None
) -> list[Item]:
    """An MQTT payload: one record or a JSON array of records. `device` and `type` may be
    left out of each record when the topic names them; when given, they must match it."""
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return [Item(0, payload, [FieldError("payload", f"is not valid JSON ({exc})")])]
    values = value if isinstance(value, list) else [value]
    items = []
    for index, obj in enumerate(values):
        errors = []
        if isinstance(obj, dict):
            for name, expected in (("device", device), ("type", record_type)):
                if expected is None:
                    continue
                given = obj.setdefault(name, expected)
                if given != expected:
                    errors.append(FieldError(name, f"does not match the topic ({expected})"))
        raw = orjson.dumps(obj)  # with the topic's device and type, so a replay reads alone
        parsed = parse_object(obj)
        if errors:
            parsed = errors + (parsed if isinstance(parsed, list) else [])
        items.append(Item(index, raw, parsed))
    return items


def items_from_csv(
    lines: Iterable[str], header: str, first_line: int = 2, skip: int = 0
) -> Iterator[Item]:
    """Rows of the GPS CSV form after its header line; the first `skip` left out, unparsed."""
    columns = csv_columns(next(csv.reader([header])))
    for number, line in enumerate(lines, start=first_line):
        if not line.strip():
            continue
        if skip:
            skip -= 1
            continue
        if isinstance(columns, list):
            yield Item(number, line, columns, header)
            continue
        row = next(csv.reader([line]))
        yield Item(number, line.rstrip("\r\n"), parse_csv_row(columns, row), header)


def is_csv(path: Path, first_line: bytes) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return name.endswith(".csv") or first_line.lstrip().startswith(b"device,")


def file_chunks(path: Path, chunk_size: int, skip: int = 0) -> Iterator[tuple[list[Item], int]]:
    """Stream a feed file as lists of at most `chunk_size` items, each with the number of
    raw bytes read so far (for progress); the first `skip` records are left out unparsed
    (another process parses them)."""
    raw = path.open("rb", buffering=0)
    counter = _CountingReader(raw)
    buffered = io.BufferedReader(counter, buffer_size=1 << 20)
    stream: IO[bytes] = buffered
    if buffered.peek(2)[:2] == GZIP_MAGIC:
        stream = gzip.GzipFile(fileobj=buffered)  # type: ignore[assignment]
    try:
        first = stream.readline()
        if is_csv(path, first):
            text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
            header = first.decode("utf-8").rstrip("\r\n")
            yield from _chunks(items_from_csv(text, header, skip=skip), chunk_size, counter)
        else:
            items = items_from_ndjson(_prepend(first, stream), skip=skip)
            yield from _chunks(items, chunk_size, counter)
    finally:
        stream.close()
        raw.close()


def _prepend(first: bytes, rest: IO[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _chunks(
    items: Iterator[Item], size: int, counter: _CountingReader
) -> Iterator[tuple[list[Item], int]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk, counter.consumed
            chunk = []
    if chunk:
        yield chunk, counter.consumed


class _CountingReader(io.RawIOBase):
    """Counts the compressed bytes consumed, so progress works for .gz files too."""

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        count = len(data)
        buffer[:count] = data
        self.consumed += count
        return count
