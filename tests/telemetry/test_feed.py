"""Feed format v1: valid records parse and round-trip; every broken field is named."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tagwatch.telemetry import feed
from tagwatch.telemetry.feed import Event, FieldError, Fix

SERIALS = st.from_regex(feed.SERIAL_PATTERN, fullmatch=True)
T_MS = st.integers(946_684_800_000, 4_102_444_800_000)  # 2000 to 2100
OFFSETS = st.sampled_from([0, 60, -300, 330, 840, -720])


@st.composite
def rfc3339(draw: st.DrawFn) -> tuple[str, int]:
    """A time as text in one of the accepted forms, and its epoch milliseconds."""
    t_ms = draw(T_MS)
    minutes = draw(OFFSETS)
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=t_ms)
    local = moment.astimezone(dt.timezone(dt.timedelta(minutes=minutes)))
    spec = draw(st.sampled_from(["milliseconds", "microseconds", "seconds"]))
    if spec == "seconds" and t_ms % 1000:
        spec = "milliseconds"
    text = local.isoformat(timespec=spec)
    if minutes == 0 and draw(st.booleans()):
        text = text.replace("+00:00", "Z")
    return text, t_ms


def _numbers(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


GPS_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "lat": _numbers(-90, 90),
    "lon": _numbers(-180, 180),
    "accuracy_m": _numbers(0, 10_000),
    "source": st.sampled_from(sorted(feed.GPS_SOURCES)),
}
GPS_OPTIONAL: dict[str, st.SearchStrategy[Any]] = {
    "sats": st.integers(0, 255),
    "hdop": _numbers(0, 50),
    "speed_mps": _numbers(0, 100),
    "heading_deg": _numbers(0, 359.9),
}
TYPE_FIELDS: dict[str, tuple[dict[str, st.SearchStrategy[Any]], dict[str, Any]]] = {
    "gps": (GPS_FIELDS, GPS_OPTIONAL),
    "rf": (
        {"state": st.sampled_from(["in_range", "out_of_range"]), "unit": SERIALS},
        {},
    ),
    "alcohol": (
        {"tac_g_dl": _numbers(0, 1), "status": st.sampled_from(["ok", "obstructed", "tamper"])},
        {},
    ),
    "status": (
        {},
        {
            "battery_pct": st.one_of(st.integers(0, 100), _numbers(0, 100)),
            "charging": st.booleans(),
            "strap": st.sampled_from(["ok", "open"]),
            "body": st.sampled_from(["ok", "no_contact"]),
            "case": st.sampled_from(["ok", "opened"]),
            "unit_power": st.sampled_from(["on", "off"]),
            "unit_moved": st.booleans(),
        },
    ),
    "checkin": (
        {
            "result": st.sampled_from(["success", "failed", "missed"]),
            "method": st.sampled_from(["face", "voice", "pin"]),
        },
        {},
    ),
}


@st.composite
def valid_records(draw: st.DrawFn, types: list[str] | None = None) -> dict[str, Any]:
    record_type = draw(st.sampled_from(types or list(TYPE_FIELDS)))
    required, optional = TYPE_FIELDS[record_type]
    time_text, _ = draw(rfc3339())
    record: dict[str, Any] = {"device": draw(SERIALS), "type": record_type, "time": time_text}
    if draw(st.booleans()):
        record["seq"] = draw(st.integers(0, feed.MAX_SEQ))
    if draw(st.booleans()):
        record["received"] = draw(rfc3339())[0]
    for name, strategy in required.items():
        record[name] = draw(strategy)
    chosen = draw(st.sets(st.sampled_from(sorted(optional)), min_size=0)) if optional else set()
    if record_type == "status" and not chosen:
        chosen = {draw(st.sampled_from(sorted(optional)))}
    for name in sorted(chosen):
        record[name] = draw(optional[name])
    return record


@given(valid_records())
def test_valid_records_parse_and_round_trip(record: dict[str, Any]) -> None:
    parsed = feed.parse_object(record)
    assert not isinstance(parsed, list), parsed
    assert parsed.device == record["device"] and parsed.type == record["type"]
    assert parsed.seq == record.get("seq")
    again = feed.parse_line(orjson.dumps(feed.to_feed(parsed)))
    assert again == parsed
    # The written form is canonical: writing it again changes nothing.
    assert feed.to_feed(again) == feed.to_feed(parsed)  # type: ignore[arg-type]


@given(rfc3339())
def test_times_are_epoch_milliseconds_utc(time_and_ms: tuple[str, int]) -> None:
    text, t_ms = time_and_ms
    assert feed.parse_time_ms(text) == t_ms
    assert feed.parse_time_ms(feed.format_time_ms(t_ms)) == t_ms


@given(valid_records())
def test_the_fast_path_agrees_with_the_full_check(record: dict[str, Any]) -> None:
    fast = feed.parse_object(record)
    full = feed._parse_object_fully(record)
    assert fast == full
    if isinstance(full, Event):  # the stored payload's text follows the field order too
        assert list(fast.payload) == list(full.payload)  # type: ignore[union-attr]


@given(valid_records(), st.data())
def test_the_fast_path_leaves_every_broken_record_to_the_full_check(
    record: dict[str, Any], data: st.DataObject
) -> None:
    field = data.draw(st.sampled_from(sorted(set(record) & set(INVALID))))
    record[field] = data.draw(st.sampled_from(INVALID[field]))
    assert feed.parse_object(record) == feed._parse_object_fully(record)


INVALID: dict[str, list[Any]] = {
    "device": ["", "has space", "a/b", "#", 7, "x" * 61],
    "type": ["gpx", 3],
    "time": [
        "2026-11-23 19:00:00Z",
        "2026-11-23T19:00:00",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "yesterday",
        1795460700,
    ],
    "seq": [-1, "5", 1.5, True, 2**63],
    "received": ["soon", 5],
    "lat": ["51.5", True, [51.5]],
    "lon": ["x", False],
    "accuracy_m": [-1, "5", True],
    "source": ["gps", "", 1],
    "sats": [256, -1, 1.5],
    "hdop": [-0.5, "1"],
    "speed_mps": [-1],
    "heading_deg": [360, -1, "north"],
    "state": ["near", True],
    "unit": ["bad unit", 5],
    "tac_g_dl": [-0.01, 1.5, "0.02"],
    "status": ["fine"],
    "battery_pct": [101, -1, "50", True],
    "charging": ["yes", 1],
    "strap": ["cut"],
    "body": ["off"],
    "case": ["broken"],
    "unit_power": ["maybe"],
    "unit_moved": ["no"],
    "result": ["passed"],
    "method": ["retina"],
}


@given(valid_records(), st.data())
def test_any_invalid_field_is_named(record: dict[str, Any], data: st.DataObject) -> None:
    field = data.draw(st.sampled_from(sorted(set(record) & set(INVALID))))
    record[field] = data.draw(st.sampled_from(INVALID[field]))
    parsed = feed.parse_object(record)
    assert isinstance(parsed, list)
    assert field in {error.field for error in parsed}, parsed


@given(valid_records(), st.data())
def test_a_missing_required_field_is_named(record: dict[str, Any], data: st.DataObject) -> None:
    required = ["device", "type", "time", *TYPE_FIELDS[record["type"]][0]]
    if record["type"] == "checkin" and record["result"] == "missed":
        required.remove("method")
    field = data.draw(st.sampled_from(required))
    del record[field]
    parsed = feed.parse_object(record)
    assert isinstance(parsed, list)
    assert field in {error.field for error in parsed}


def test_unknown_fields_and_bad_json_are_named() -> None:
    record = {
        "device": "GPS1",
        "type": "gps",
        "time": "2026-11-23T19:00:00Z",
        "lat": 51.5,
        "lon": -0.1,
        "accuracy_m": 4,
        "source": "gnss",
        "acuracy": 5,
    }
    assert feed.parse_object(record) == [
        FieldError("acuracy", "is not a field of a gps record in feed v1")
    ]
    (error,) = feed.parse_line(b'{"device": "GPS1",')  # type: ignore[misc]
    assert error.field == "record" and "not valid JSON" in error.reason
    assert feed.parse_object([1]) == [FieldError("record", "must be a JSON object")]
    status_errors = feed.parse_object(
        {"device": "D", "type": "status", "time": "2026-01-01T00:00Z"}
    )
    assert {e.field for e in status_errors} == {"time", "status"}  # type: ignore[union-attr]


def test_impossible_coordinates_parse_but_are_flagged() -> None:
    base = {"device": "D1", "type": "gps", "time": "2026-11-23T19:00:00Z"}
    out_of_range = feed.parse_object(
        {**base, "lat": 95.0, "lon": 0.5, "accuracy_m": 5, "source": "gnss"}
    )
    null_island = feed.parse_object(
        {**base, "lat": 0.0, "lon": 0.0, "accuracy_m": 5, "source": "gnss"}
    )
    fine = feed.parse_object({**base, "lat": 51.5, "lon": 0.0, "accuracy_m": 5, "source": "gnss"})
    assert isinstance(out_of_range, Fix) and "outside" in (out_of_range.coordinate_problem or "")
    assert isinstance(null_island, Fix) and "0,0" in (null_island.coordinate_problem or "")
    assert isinstance(fine, Fix) and fine.coordinate_problem is None


def test_dedupe_keys_follow_the_feed_format() -> None:
    with_seq = feed.parse_object(
        {"device": "D1", "type": "status", "time": "2026-11-23T19:00:00Z", "seq": 9, "strap": "ok"}
    )
    without = feed.parse_object(
        {"device": "D1", "type": "status", "time": "2026-11-23T19:00:00.5Z", "strap": "ok"}
    )
    assert isinstance(with_seq, Event) and with_seq.dedupe_key == "D1|9"
    assert isinstance(without, Event) and without.dedupe_key == "D1|status|1795460400500"


@pytest.mark.parametrize(
    ("header", "row", "expected"),
    [
        ("device,time,lat,lon,accuracy_m", "D1,2026-11-23T19:00:00Z,51.5,-0.1,4", None),
        ("device,time,lat,lon,accuracy_m,seq", "D1,2026-11-23T19:00:00Z,51.5,-0.1,4,7", None),
        ("device,time,lat,lon,accuracy_m,seq", "D1,2026-11-23T19:00:00Z,51.5,-0.1,4,", None),
        ("device,time,lat,lon,accuracy_m", "D1,2026-11-23T19:00:00Z,north,-0.1,4", "lat"),
        ("device,time,lat,lon,accuracy_m", "D1,2026-11-23T19:00:00Z,51.5,-0.1", "record"),
        ("device,time,lat,lon,accuracy_m,seq", "D1,2026-11-23T19:00:00Z,51.5,-0.1,4,x", "seq"),
        ("device,time,lat,lon,accuracy_m", "D1,23/11/2026 19:00,51.5,-0.1,4", "time"),
    ],
)
def test_the_gps_csv_form(header: str, row: str, expected: str | None) -> None:
    columns = feed.csv_columns(header.split(","))
    assert isinstance(columns, dict)
    parsed = feed.parse_csv_row(columns, row.split(","))
    if expected is None:
        assert isinstance(parsed, Fix) and parsed.source == feed.CSV_SOURCE
        assert parsed.lat == 51.5 and parsed.t_ms == 1795460400000
    else:
        assert isinstance(parsed, list) and expected in {e.field for e in parsed}


def test_a_bad_csv_header_is_named() -> None:
    errors = feed.csv_columns(["device", "when", "lat", "lon", "accuracy_m"])
    assert isinstance(errors, list)
    assert {e.field for e in errors} == {"header"}
    assert any("time" in e.reason for e in errors) and any("when" in e.reason for e in errors)
