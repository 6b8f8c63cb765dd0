"""Device feed format v1: parse one record into a typed value or a list of field errors.

Pure: no database, no clock. See docs/feed-format.md for the contract. Coordinates that are
numbers but impossible (outside -90..90 / -180..180, or exactly 0,0) are not rejected: the
fix is kept and flagged implausible (`coordinate_problem`), because it is still evidence that
the device was talking. Everything else that breaks the contract is an error naming the field.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import orjson

RECORD_TYPES: Final = ("gps", "rf", "alcohol", "status", "checkin")
GPS_SOURCES: Final = frozenset({"gnss", "cell", "wifi", "beacon"})
SERIAL_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,59}")
CSV_REQUIRED: Final = ("device", "time", "lat", "lon", "accuracy_m")
CSV_OPTIONAL: Final = ("seq",)
CSV_SOURCE: Final = "gnss"  # the CSV form has no source column: its fixes are GNSS fixes
MAX_SEQ: Final = 2**63 - 1

# RFC 3339 date-time with a mandatory offset; fromisoformat alone accepts far more.
_RFC3339: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})"
)
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_COMMON: Final = frozenset({"device", "type", "time", "seq", "received"})


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    reason: str


class Fix(NamedTuple):
    """A `gps` record. Times are epoch milliseconds, UTC. (Tuples: cheap to build by the
    million.)"""

    device: str
    t_ms: int
    seq: int | None
    received_ms: int | None
    lat: float
    lon: float
    accuracy_m: float
    source: str
    extras: Mapping[str, float | int] | None = None

    @property
    def type(self) -> str:
        return "gps"

    @property
    def dedupe_key(self) -> str:
        return dedupe_key(self.device, "gps", self.t_ms, self.seq)

    @property
    def coordinate_problem(self) -> str | None:
        """Why the coordinates cannot be a real position, or None when they can."""
        return coordinate_problem(self.lat, self.lon)


class Event(NamedTuple):
    """An `rf`, `alcohol`, `status` or `checkin` record with its type's fields."""

    device: str
    type: str
    t_ms: int
    seq: int | None
    received_ms: int | None
    payload: Mapping[str, Any]

    @property
    def dedupe_key(self) -> str:
        return dedupe_key(self.device, self.type, self.t_ms, self.seq)


Record = Fix | Event
Parsed = Record | list[FieldError]


def coordinate_problem(lat: float, lon: float) -> str | None:
    """Why coordinates cannot be a real position, or None when they can."""
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return "impossible coordinates: outside -90..90, -180..180"
    if lat == 0.0 and lon == 0.0:
        return "impossible coordinates: 0,0 (no position)"
    return None


def dedupe_key(device: str, record_type: str, t_ms: int, seq: int | None) -> str:
    """(device, seq) when the record has a sequence number, else (device, type, time)."""
    if seq is not None:
        return f"{device}|{seq}"
    return f"{device}|{record_type}|{t_ms}"


# --- field checks: each returns the clean value or raises _Bad with the reason ------------


class _Bad(Exception):
    pass


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad("must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise _Bad("must be a finite number")
    return number


def _non_negative(value: object) -> float:
    number = _number(value)
    if number < 0:
        raise _Bad("must not be negative")
    return number


def _integer(value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad("must be an integer")
    if not low <= value <= high:
        raise _Bad(f"must be between {low} and {high}")
    return value


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Bad("must be true or false")
    return value


def _choice(*allowed: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        if not isinstance(value, str) or value not in allowed:
            raise _Bad("must be one of " + ", ".join(allowed))
        return value

    return check


def _serial(value: object) -> str:
    if not isinstance(value, str) or not SERIAL_PATTERN.fullmatch(value):
        raise _Bad("must be a serial: 1-60 of letters, digits, '.', '_', ':' or '-'")
    return value


def _battery(value: object) -> float | int:
    number = _number(value)
    if not 0 <= number <= 100:
        raise _Bad("must be between 0 and 100")
    return value  # type: ignore[return-value]  # _number proved it is an int or float


def _tac(value: object) -> float | int:
    number = _non_negative(value)
    if number > 1.0:
        raise _Bad("must be at most 1.0 g/dL")
    return value  # type: ignore[return-value]


def _heading(value: object) -> float | int:
    number = _number(value)
    if not 0 <= number < 360:
        raise _Bad("must be at least 0 and below 360")
    return value  # type: ignore[return-value]


def _plain_non_negative(value: object) -> float | int:
    _non_negative(value)
    return value  # type: ignore[return-value]


def parse_time_ms(value: object) -> int:
    """An RFC 3339 date-time with offset as epoch milliseconds, UTC (sub-ms truncated)."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise _Bad("must be an RFC 3339 date-time with offset, e.g. 2026-11-23T19:00:00Z")
    text = value
    dot = text.find(".")
    if dot != -1:  # fromisoformat takes at most 6 fractional digits
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        text = text[: min(end, dot + 7)] + text[end:]
    try:
        moment = dt.datetime.fromisoformat(text.upper())
    except ValueError as exc:
        raise _Bad(f"is not a real date-time ({exc})") from None
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def format_time_ms(t_ms: int) -> str:
    """Epoch milliseconds as RFC 3339 in UTC with `Z` (milliseconds shown when not zero)."""
    moment = _EPOCH + dt.timedelta(milliseconds=t_ms)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# Per type: field -> (check, required). `status` needs at least one of its fields.
_Check = Callable[[object], Any]
_TYPE_FIELDS: Final[dict[str, dict[str, tuple[_Check, bool]]]] = {
    "gps": {
        "lat": (_number, True),
        "lon": (_number, True),
        "accuracy_m": (_non_negative, True),
        "source": (_choice(*sorted(GPS_SOURCES)), True),
        "sats": (lambda v: _integer(v, 0, 255), False),
        "hdop": (_plain_non_negative, False),
        "speed_mps": (_plain_non_negative, False),
        "heading_deg": (_heading, False),
    },
    "rf": {
        "state": (_choice("in_range", "out_of_range"), True),
        "unit": (_serial, True),
    },
    "alcohol": {
        "tac_g_dl": (_tac, True),
        "status": (_choice("ok", "obstructed", "tamper"), True),
    },
    "status": {
        "battery_pct": (_battery, False),
        "charging": (_boolean, False),
        "strap": (_choice("ok", "open"), False),
        "body": (_choice("ok", "no_contact"), False),
        "case": (_choice("ok", "opened"), False),
        "unit_power": (_choice("on", "off"), False),
        "unit_moved": (_boolean, False),
    },
    "checkin": {
        "result": (_choice("success", "failed", "missed"), True),
        "method": (_choice("face", "voice", "pin"), False),
    },
}
_GPS_CORE: Final = frozenset({"lat", "lon", "accuracy_m", "source"})


# --- the fast path: well-formed GPS fixes, the bulk of the feed --------------------------
# It accepts only what the full check below accepts, and builds the same value; anything
# unusual falls through to the full check (a property test holds the two paths equal).

_FAST_GPS_KEYS: Final = frozenset(
    {"device", "type", "time", "seq", "lat", "lon", "accuracy_m", "source"}
)
_CACHE_LIMIT: Final = 200_000
_known_serials: dict[str, bool] = {}
_minute_ms: dict[str, int] = {}


# `:SS` -> milliseconds into the minute; then `Z` or `.f{1,3}Z` -> milliseconds more.
_SECOND_MS: Final = {f":{second:02d}": second * 1000 for second in range(60)}
_FRACTION_MS: Final = {"Z": 0} | {
    f".{fraction:0{digits}d}Z": int(f"{fraction:0{digits}d}".ljust(3, "0"))
    for digits in (1, 2, 3)
    for fraction in range(10**digits)
}


def _fast_time_ms(value: str) -> int | None:
    """Epoch ms of `YYYY-MM-DDTHH:MM:SS[.f{1,3}]Z` through table look-ups, else None."""
    second = _SECOND_MS.get(value[16:19])
    fraction = _FRACTION_MS.get(value[19:])
    if second is None or fraction is None:
        return None
    offset = second + fraction
    minute = _minute_ms.get(value[:16])
    if minute is None:
        try:
            minute = parse_time_ms(value[:16] + ":00Z")
        except _Bad:
            return None
        if len(_minute_ms) >= _CACHE_LIMIT:
            _minute_ms.clear()
        _minute_ms[value[:16]] = minute
    return minute + offset


def _fast_fix(obj: dict[str, Any]) -> Fix | None:
    if not _FAST_GPS_KEYS.issuperset(obj):
        return None
    # Any: the type() tests below prove the types, which mypy cannot follow.
    device: Any = obj.get("device")
    stamp: Any = obj.get("time")
    lat: Any = obj.get("lat")
    lon: Any = obj.get("lon")
    accuracy: Any = obj.get("accuracy_m")
    source: Any = obj.get("source")
    seq: Any = obj.get("seq")
    accuracy_type = type(accuracy)
    if (
        type(device) is not str
        or type(stamp) is not str
        or type(lat) is not float
        or type(lon) is not float
        or (accuracy_type is not float and accuracy_type is not int)
        or source not in GPS_SOURCES
        or (seq is not None and (type(seq) is not int or not 0 <= seq <= MAX_SEQ))
    ):
        return None
    # x - x == 0.0 is false for infinities and NaN alike.
    if not (lat - lat == 0.0 and lon - lon == 0.0 and accuracy >= 0 and accuracy - accuracy == 0):
        return None
    if device not in _known_serials and not _learn_serial(device):
        return None
    second = _SECOND_MS.get(stamp[16:19])
    fraction = _FRACTION_MS.get(stamp[19:])
    minute = _minute_ms.get(stamp[:16])
    if second is None or fraction is None or minute is None:
        t_ms = _fast_time_ms(stamp)
        if t_ms is None:
            return None
    else:
        t_ms = minute + second + fraction
    return Fix(device, t_ms, seq, None, lat, lon, float(accuracy), source, None)


def _learn_serial(device: str) -> bool:
    if not SERIAL_PATTERN.fullmatch(device):
        return False
    if len(_known_serials) >= _CACHE_LIMIT:
        _known_serials.clear()
    _known_serials[device] = True
    return True


def _fast_event(obj: dict[str, Any], record_type: str) -> Event | None:
    """A well-formed rf, alcohol, status or checkin record without `received`, else None.
    The same checks as the full path, in its order, with no error collecting."""
    fields = _TYPE_FIELDS.get(record_type)
    if fields is None:
        return None
    for name in obj:
        if name not in fields and name not in _FAST_EVENT_COMMON:
            return None
    device: Any = obj.get("device")
    stamp: Any = obj.get("time")
    seq: Any = obj.get("seq")
    if (
        type(device) is not str
        or type(stamp) is not str
        or (seq is not None and (type(seq) is not int or not 0 <= seq <= MAX_SEQ))
    ):
        return None
    if device not in _known_serials and not _learn_serial(device):
        return None
    t_ms = _fast_time_ms(stamp)
    if t_ms is None:
        return None
    payload: dict[str, Any] = {}
    try:
        for name, (check, required) in fields.items():
            value = obj.get(name)
            if value is not None:
                payload[name] = check(value)
            elif required:
                return None
    except _Bad:
        return None
    if not payload or (
        record_type == "checkin" and payload.get("result") != "missed" and "method" not in obj
    ):
        return None  # the full path words these errors
    return Event(device, record_type, t_ms, seq, None, payload)


_FAST_EVENT_COMMON: Final = frozenset({"device", "type", "time", "seq"})


def parse_object(obj: object) -> Parsed:
    """One decoded JSON value as a record, or every error found in it."""
    if type(obj) is dict:
        record_type = obj.get("type")
        fast: Record | None
        if record_type == "gps":
            fast = _fast_fix(obj)
        elif type(record_type) is str:
            fast = _fast_event(obj, record_type)
        else:
            fast = None
        if fast is not None:
            return fast
    return _parse_object_fully(obj)


def _parse_object_fully(obj: object) -> Parsed:
    if not isinstance(obj, dict):
        return [FieldError("record", "must be a JSON object")]
    errors: list[FieldError] = []

    def take(name: str, check: _Check, required: bool) -> Any:
        value = obj.get(name)
        if value is None:
            if required:
                errors.append(FieldError(name, "is required"))
            return None
        try:
            return check(value)
        except _Bad as bad:
            errors.append(FieldError(name, str(bad)))
            return None

    device = take("device", _serial, True)
    record_type = obj.get("type")
    fields = _TYPE_FIELDS.get(record_type) if isinstance(record_type, str) else None
    if record_type is None:
        errors.append(FieldError("type", "is required"))
    elif fields is None:
        errors.append(FieldError("type", "must be one of " + ", ".join(RECORD_TYPES)))
    t_ms = take("time", parse_time_ms, True)
    seq = take("seq", lambda v: _integer(v, 0, MAX_SEQ), False)
    received = take("received", parse_time_ms, False)

    values: dict[str, Any] = {}
    if fields is not None:
        for name, (check, required) in fields.items():
            if obj.get(name) is not None:
                values[name] = take(name, check, True)
            elif required:
                errors.append(FieldError(name, f"is required for a {record_type} record"))
        for name in obj:
            if name not in _COMMON and name not in fields:
                errors.append(
                    FieldError(name, f"is not a field of a {record_type} record in feed v1")
                )
        if record_type == "status" and not values:
            errors.append(FieldError("status", "needs at least one of " + ", ".join(fields)))
        if (
            record_type == "checkin"
            and values.get("result") in ("success", "failed")
            and "method" not in obj
        ):
            errors.append(FieldError("method", "is required unless the result is missed"))
    if errors:
        return errors
    assert isinstance(device, str) and isinstance(record_type, str) and isinstance(t_ms, int)
    if record_type == "gps":
        extras = {k: v for k, v in values.items() if k not in _GPS_CORE} or None
        return Fix(
            device=device,
            t_ms=t_ms,
            seq=seq,
            received_ms=received,
            lat=values["lat"],
            lon=values["lon"],
            accuracy_m=values["accuracy_m"],
            source=values["source"],
            extras=extras,
        )
    return Event(
        device=device,
        type=record_type,
        t_ms=t_ms,
        seq=seq,
        received_ms=received,
        payload=values,
    )


def parse_line(line: str | bytes) -> Parsed:
    """One NDJSON line as a record, or its errors (bad JSON names the field `record`)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return [FieldError("record", f"is not valid JSON ({exc})")]
    return parse_object(obj)


def csv_columns(header: Sequence[str]) -> dict[str, int] | list[FieldError]:
    """Column positions of a GPS CSV header, or errors naming what is wrong with it."""
    names = [name.strip() for name in header]
    errors = [
        FieldError("header", f"is missing the column {name}")
        for name in CSV_REQUIRED
        if name not in names
    ]
    errors.extend(
        FieldError("header", f"has an unknown column {name!r}")
        for name in names
        if name not in CSV_REQUIRED and name not in CSV_OPTIONAL
    )
    if len(set(names)) != len(names):
        errors.append(FieldError("header", "repeats a column"))
    return errors or {name: index for index, name in enumerate(names)}


def parse_csv_row(columns: Mapping[str, int], row: Sequence[str]) -> Parsed:
    """One row of the GPS CSV form (values as text) as a fix, or its errors."""
    if len(row) != len(columns):
        return [FieldError("record", f"has {len(row)} values, the header has {len(columns)}")]
    obj: dict[str, object] = {"type": "gps", "source": CSV_SOURCE}
    errors: list[FieldError] = []
    for name, index in columns.items():
        value = row[index].strip()
        if name in ("device", "time"):
            obj[name] = value
        elif name == "seq":
            if value:
                try:
                    obj[name] = int(value)
                except ValueError:
                    errors.append(FieldError(name, "must be an integer"))
        else:
            try:
                obj[name] = float(value)
            except ValueError:
                errors.append(FieldError(name, "must be a number"))
    if errors:
        return errors
    return parse_object(obj)


def to_feed(record: Record) -> dict[str, Any]:
    """The record as a feed v1 JSON object (inverse of `parse_object`)."""
    obj: dict[str, Any] = {
        "device": record.device,
        "type": record.type,
        "time": format_time_ms(record.t_ms),
    }
    if record.seq is not None:
        obj["seq"] = record.seq
    if record.received_ms is not None:
        obj["received"] = format_time_ms(record.received_ms)
    if isinstance(record, Fix):
        obj.update(
            lat=record.lat, lon=record.lon, accuracy_m=record.accuracy_m, source=record.source
        )
        obj.update(record.extras or {})
    else:
        obj.update(record.payload)
    return obj
