"""Checks of a cohort against docs/order-format.md, written from the document's rules."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Any

import numpy as np
from shapely.geometry import Point, shape

from tagwatch.geo.projection import to_bng

SEX = {"male", "female", "intersex", "not_recorded", "prefers_not_to_say"}
GENDER = {"man", "woman", "non_binary", "other", "not_recorded", "prefers_not_to_say"}
ETHNICITY = {
    *("A1", "A2", "A3", "A4", "A9", "B1", "B2", "B9", "M1", "M2", "M3", "M9"),
    *("W1", "W2", "W3", "W4", "W9", "O1", "O9", "NR", "NS"),
}
DISABILITY = {"yes", "no", "not_recorded", "prefers_not_to_say"}
RELIGION = {
    "none",
    "christian",
    "buddhist",
    "hindu",
    "jewish",
    "muslim",
    "sikh",
    "other",
    "not_recorded",
    "prefers_not_to_say",
}
ORDER_TYPES = {
    "community_order",
    "suspended_sentence_order",
    "licence",
    "home_detention_curfew",
    "post_sentence_supervision",
    "court_bail",
    "immigration_bail",
    "civil_order",
}
STATUSES = {"draft", "submitted", "awaiting_fitting", "active", "suspended", "ended"}
ORG_KINDS = {"court", "prison", "probation", "home_office", "youth_custody"}
DEVICE_TYPES = {"gps_tag", "rf_tag", "home_monitoring_unit", "alcohol_tag", "non_fitted_device"}
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
IDENTIFIER_FORMATS = {
    "crn": re.compile(r"[A-Z]\d{6}"),
    "pnc": re.compile(r"(\d{2}|\d{4})/(\d{1,7})([A-Z])"),
    "nomis": re.compile(r"[A-Z]\d{4}[A-Z]{2}"),
    "prison_number": re.compile(r"[A-Z]{2}\d{4}|[A-Z0-9]{6}"),
    "home_office_ref": re.compile(r"([A-Z]\d{7}|\d{1,12})(-\d{1,2})?"),
}
POSTCODE = re.compile(
    r"(GIR 0AA|[A-PR-UWYZ](\d[A-HJKPSTUW]?|\d\d|[A-HK-Y]\d[ABEHMNPRVWXY]?|[A-HK-Y]\d\d) "
    r"\d[ABD-HJLNP-UW-Z]{2})"
)
TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
CLOCK = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


def pnc_is_valid(value: str) -> bool:
    match = IDENTIFIER_FORMATS["pnc"].fullmatch(value)
    if not match:
        return False
    year, serial, letter = match.groups()
    number = int(year[-2:] + serial.zfill(7))
    return "ZABCDEFGHJKLMNPQRTUVWXY"[number % 23] == letter


def _time(text: str) -> dt.datetime:
    assert TIME.fullmatch(text), text
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _minutes(clock: str) -> int:
    assert CLOCK.fullmatch(clock), clock
    return int(clock[:2]) * 60 + int(clock[3:])


def timetable_problems(periods: list[dict[str, str]]) -> list[str]:
    problems: list[str] = []
    per_day = dict.fromkeys(DAYS, 0)
    spans: list[tuple[int, int]] = []
    for period in periods:
        start, end = _minutes(period["start"]), _minutes(period["end"])
        length = end - start if end > start else end + 1440 - start
        per_day[period["day"]] += length
        begin = DAYS.index(period["day"]) * 1440 + start
        spans.append((begin, begin + length))
    week = 7 * 1440
    # Periods run over the week's end into Monday: unroll and compare every pair.
    unrolled = sorted([*spans, *[(s + week, e + week) for s, e in spans]])
    for (_, e1), (s2, _) in itertools.pairwise(unrolled):
        if s2 < e1:
            problems.append("periods overlap")
    for day, minutes in per_day.items():
        if not 120 <= minutes <= 1200:
            problems.append(f"{day} has {minutes / 60:.1f} h")
    if sum(per_day.values()) > 112 * 60:
        problems.append("more than 112 h a week")
    return problems


def zone_problems(geometry: dict[str, Any]) -> list[str]:
    if geometry["type"] == "Circle":
        lon, lat = geometry["coordinates"]
        e, n = to_bng([lon], [lat])
        zone = Point(e[0], n[0]).buffer(geometry["radius_m"])
    else:
        assert geometry["type"] in ("Polygon", "MultiPolygon")
        wgs = shape(geometry)
        if not wgs.is_valid:
            return ["invalid geometry"]
        ring = np.asarray(wgs.exterior.coords)
        e, n = to_bng(ring[:, 0], ring[:, 1])
        zone = shape({"type": "Polygon", "coordinates": [list(zip(e, n, strict=True))]})
    problems = []
    if np.isnan(e).any():
        problems.append("outside Great Britain")
    if not 10 <= zone.area <= 2_500e6:
        problems.append(f"area {zone.area:.0f} m²")
    return problems


def cohort_problems(document: dict[str, Any], start: dt.date) -> list[str]:
    """Every breach of the order format's rules found in a cohort (empty when valid)."""
    problems: list[str] = []

    def check(ok: bool, where: str, why: str) -> None:
        if not ok:
            problems.append(f"{where}: {why}")

    check(document["format"] == "tagwatch-orders" and document["version"] == 1, "", "header")
    devices = {d["serial"]: d for d in document["devices"]}
    check(len(devices) == len(document["devices"]), "devices", "serials repeat")
    for d in document["devices"]:
        check(d["type"] in DEVICE_TYPES and d["model"] and d["batch"], d["serial"], "device")
    seen_refs: set[str] = set()
    seen_ids: dict[str, set[str]] = {k: set() for k in IDENTIFIER_FORMATS}
    order_refs: set[str] = set()
    allocations: dict[str, list[tuple[dt.datetime, dt.datetime | None]]] = {}
    for i, p in enumerate(document["people"]):
        w = f"people[{i}]"
        check(re.fullmatch(r"TW\d{6,10}", p["ref"]) is not None, w, "ref format")
        check(p["ref"] not in seen_refs, w, "ref repeats")
        seen_refs.add(p["ref"])
        check(sum(n["kind"] == "primary" for n in p["names"]) == 1, w, "one primary name")
        for name in p["names"]:
            check(
                name["kind"] in ("primary", "alias") and name["given"] and name["family"], w, "name"
            )
        born = dt.date.fromisoformat(p["date_of_birth"])
        check(dt.date(1900, 1, 1) <= born <= start, w, "date of birth")
        check(18 <= (start - born).days / 365.25 <= 70.1, w, "age outside 18-70")
        check(p["sex"] in SEX and p["gender"] in GENDER, w, "sex/gender")
        check(p["ethnicity"] in ETHNICITY, w, "ethnicity")
        check(p["disability"] in DISABILITY and p["religion"] in RELIGION, w, "codes")
        nationality = p["nationality"]
        check(
            nationality == "not_recorded" or re.fullmatch(r"[A-Z]{3}", nationality) is not None,
            w,
            "nationality",
        )
        check(re.fullmatch(r"[a-z]{2}", p["language"]) is not None, w, "language")
        check(
            isinstance(p["interpreter_needed"], bool) and isinstance(p["restricted"], bool),
            w,
            "bools",
        )
        for key, value in p["identifiers"].items():
            check(IDENTIFIER_FORMATS[key].fullmatch(value) is not None, f"{w}.{key}", value)
            check(value not in seen_ids[key], f"{w}.{key}", "repeats across people")
            seen_ids[key].add(value)
        if "pnc" in p["identifiers"]:
            check(pnc_is_valid(p["identifiers"]["pnc"]), w, "PNC check letter")
        address_refs = [a["ref"] for a in p["addresses"]]
        check(len(set(address_refs)) == len(address_refs), w, "address refs repeat")
        for a in p["addresses"]:
            check(POSTCODE.fullmatch(a["postcode"]) is not None, w, f"postcode {a['postcode']}")
            check(51.2 < a["lat"] < 51.8 and -0.7 < a["lon"] < 0.4, w, "address not in London")
            check(bool(a["line1"]) and bool(a["town"]), w, "address lines")
        for j, o in enumerate(p["orders"]):
            ow = f"{w}.orders[{j}]"
            check(
                re.fullmatch(r"ORD\d+", o["ref"]) is not None and o["ref"] not in order_refs,
                ow,
                "ref",
            )
            order_refs.add(o["ref"])
            check(o["type"] in ORDER_TYPES and o["status"] in STATUSES, ow, "type/status")
            check((o["end_reason"] is not None) == (o["status"] == "ended"), ow, "end_reason")
            check(o["end_reason"] in (None, "completed", "revoked", "expired"), ow, "end_reason")
            for org in ("notifying_organisation", "responsible_organisation"):
                check(o[org]["kind"] in ORG_KINDS and bool(o[org]["name"]), ow, org)
            check(o["region"] == "LDN", ow, "region")
            check(re.fullmatch(r"officer\d+", o["responsible_officer"]) is not None, ow, "officer")
            begins, ends = (
                dt.date.fromisoformat(o["start_date"]),
                dt.date.fromisoformat(o["end_date"]),
            )
            check(ends > begins, ow, "end before start")
            if o["fitting_deadline"] is not None:
                _time(o["fitting_deadline"])
            if o["type"] == "immigration_bail":
                check(nationality not in ("GBR", "not_recorded"), ow, "immigration bail for GBR")
            for k, c in enumerate(o["conditions"]):
                cw = f"{ow}.conditions[{k}]"
                check(c["end"] is None or _time(c["end"]) > _time(c["start"]), cw, "end")
                if c["type"] == "curfew":
                    check(c["address_ref"] in address_refs, cw, "address_ref")
                    for problem in timetable_problems(c["timetable"]):
                        problems.append(f"{cw}: {problem}")
                    kinds = {s["kind"] for s in c["safeguarding_checks"]}
                    outcomes = {s["outcome"] for s in c["safeguarding_checks"]}
                    if o["status"] == "active":
                        check(kinds == {"domestic_abuse", "child_safeguarding"}, cw, "checks")
                        check("concerns_unsuitable" not in outcomes, cw, "unsuitable")
                    if c["release_day"] is not None:
                        _minutes(c["release_day"]["start"])
                        _minutes(c["release_day"]["end"])
                if c["type"] in ("exclusion_zone", "inclusion_zone"):
                    check(bool(c["name"]), cw, "zone name")
                    for problem in zone_problems(c["geometry"]):
                        problems.append(f"{cw}: {problem}")
                    if c["schedule"] is not None:
                        for period in c["schedule"]:
                            check(period["day"] in DAYS, cw, "schedule day")
            check((o["status"] == "active") <= bool(o["allocations"]), ow, "active without device")
            check(
                o["status"] != "awaiting_fitting" or not o["allocations"], ow, "awaiting has device"
            )
            for alloc in o["allocations"]:
                check(alloc["device"] in devices, ow, "unknown device")
                fitted = _time(alloc["fitted_at"])
                removed = _time(alloc["removed_at"]) if alloc["removed_at"] else None
                check(removed is None or removed > fitted, ow, "removed before fitted")
                allocations.setdefault(alloc["device"], []).append((fitted, removed))
    for serial, spans in allocations.items():
        spans.sort(key=lambda s: s[0])
        for (_, r1), (f2, _) in itertools.pairwise(spans):
            check(r1 is not None and r1 <= f2, serial, "device on two allocations at once")
    return problems
