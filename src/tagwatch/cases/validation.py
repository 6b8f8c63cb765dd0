"""Checks of people, addresses, orders, conditions, devices and allocations in document form.

The document form is the one `docs/order-format.md` defines; the API takes the same shapes.
Every check appends `path: reason` to an `Errors` and returns the normalised value, so a
whole file is checked in one pass and refused with every problem it has.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tagwatch.cases import identifiers, timetable, zones
from tagwatch.cases.postcodes import in_great_britain, normalise_postcode

SEX = ("male", "female", "intersex", "not_recorded", "prefers_not_to_say")
GENDER = ("man", "woman", "non_binary", "other", "not_recorded", "prefers_not_to_say")
DISABILITY = ("yes", "no", "not_recorded", "prefers_not_to_say")
RELIGION = (
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
)
ETHNICITY = (
    "A1", "A2", "A3", "A4", "A9", "B1", "B2", "B9", "M1", "M2", "M3", "M9",
    "W1", "W2", "W3", "W4", "W9", "O1", "O9", "NR", "NS",
)  # fmt: skip
NAME_KINDS = ("primary", "alias")
ORDER_TYPES = (
    "community_order",
    "suspended_sentence_order",
    "licence",
    "home_detention_curfew",
    "post_sentence_supervision",
    "court_bail",
    "immigration_bail",
    "civil_order",
)
ORG_KINDS = ("court", "prison", "probation", "home_office", "youth_custody")
CONDITION_TYPES = (
    "curfew",
    "exclusion_zone",
    "inclusion_zone",
    "trail_monitoring",
    "alcohol_abstinence",
    "alcohol_monitoring",
    "attendance",
)
CHECK_KINDS = ("domestic_abuse", "child_safeguarding")
CHECK_OUTCOMES = ("no_concerns", "concerns_managed", "concerns_unsuitable")
DEVICE_TYPES = ("gps_tag", "rf_tag", "home_monitoring_unit", "alcohol_tag", "non_fitted_device")

_PERSON_REF = re.compile(r"TW\d{6,10}")
_ORDER_REF = re.compile(r"ORD\d{1,20}")
_NATIONALITY = re.compile(r"[A-Z]{3}")
_LANGUAGE = re.compile(r"[a-z]{2}")
_USERNAME = re.compile(r"[A-Za-z0-9._@-]{1,120}")


@dataclass
class Errors:
    """Problems found, each `path: reason`."""

    items: list[str] = field(default_factory=list)

    def add(self, path: str, reason: str) -> None:
        self.items.append(f"{path}: {reason}" if path else reason)

    def __bool__(self) -> bool:
        return bool(self.items)


class ValidationFailed(ValueError):
    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


# Scalars -----------------------------------------------------------------------------------


def text(raw: Mapping[str, Any], key: str, path: str, errors: Errors, *, optional: bool = False,
         max_len: int = 200) -> str | None:  # fmt: skip
    value = raw.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        errors.add(join(path, key), "must be non-empty text")
        return None
    if len(value) > max_len:
        errors.add(join(path, key), f"must be at most {max_len} characters")
        return None
    return value.strip()


def code(
    raw: Mapping[str, Any], key: str, allowed: Sequence[str], path: str, errors: Errors
) -> str | None:
    value = raw.get(key)
    if value not in allowed:
        errors.add(join(path, key), f"must be one of {', '.join(allowed)} (got {value!r})")
        return None
    return str(value)


def boolean(raw: Mapping[str, Any], key: str, path: str, errors: Errors) -> bool | None:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        errors.add(join(path, key), "must be true or false")
        return None
    return value


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def parse_date(value: object) -> dt.date:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("must be a date YYYY-MM-DD")
    return dt.date.fromisoformat(value)


def parse_time(value: object) -> dt.datetime:
    """An RFC 3339 time with an offset (`Z` or `+01:00`), returned in UTC."""
    if not isinstance(value, str) or "T" not in value:
        raise ValueError("must be an RFC 3339 time such as 2026-11-23T19:00:00Z")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ValueError("must be an RFC 3339 time such as 2026-11-23T19:00:00Z") from None
    if parsed.tzinfo is None:
        raise ValueError("must give its UTC offset (end with Z)")
    return parsed.astimezone(dt.UTC)


def format_time(value: dt.datetime) -> str:
    text_ = value.astimezone(dt.UTC).isoformat()
    return text_.replace("+00:00", "Z")


def date_field(raw: Mapping[str, Any], key: str, path: str, errors: Errors) -> dt.date | None:
    try:
        return parse_date(raw.get(key))
    except ValueError as exc:
        errors.add(join(path, key), str(exc))
        return None


def time_field(raw: Mapping[str, Any], key: str, path: str, errors: Errors, *,
               optional: bool = False) -> dt.datetime | None:  # fmt: skip
    value = raw.get(key)
    if value is None and optional:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        errors.add(join(path, key), str(exc))
        return None


def number(raw: Mapping[str, Any], key: str, path: str, errors: Errors) -> float | None:
    value = raw.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or value != value:
        errors.add(join(path, key), "must be a number")
        return None
    return float(value)


def is_list(
    raw: Mapping[str, Any], key: str, path: str, errors: Errors, *, optional: bool = True
) -> list[Any]:
    value = raw.get(key)
    if value is None and optional:
        return []
    if not isinstance(value, list):
        errors.add(join(path, key), "must be a list")
        return []
    return value


def is_object(value: object, path: str, errors: Errors) -> bool:
    if not isinstance(value, Mapping):
        errors.add(path, "must be an object")
        return False
    return True


# People ------------------------------------------------------------------------------------


def person_ref(value: object, path: str, errors: Errors) -> str | None:
    if not isinstance(value, str) or not _PERSON_REF.fullmatch(value):
        errors.add(join(path, "ref"), "must be TW followed by 6 to 10 digits")
        return None
    return value


def name(raw: object, path: str, errors: Errors) -> dict[str, Any] | None:
    if not is_object(raw, path, errors):
        return None
    assert isinstance(raw, Mapping)
    before = len(errors.items)
    out: dict[str, Any] = {
        "kind": code(raw, "kind", NAME_KINDS, path, errors),
        "given": text(raw, "given", path, errors, max_len=120),
        "family": text(raw, "family", path, errors, max_len=120),
        "middle": text(raw, "middle", path, errors, optional=True, max_len=120),
    }
    return out if len(errors.items) == before else None


def names(raw: object, path: str, errors: Errors) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        errors.add(path, "must be a list with at least one name")
        return []
    out = [n for i, item in enumerate(raw) if (n := name(item, join(path, i), errors))]
    primaries = sum(
        1 for item in raw if isinstance(item, Mapping) and item.get("kind") == "primary"
    )
    if primaries != 1:
        errors.add(path, f"must have exactly one primary name (found {primaries})")
    return out


def identifier_set(raw: object, path: str, errors: Errors) -> dict[str, str]:
    if raw is None:
        return {}
    if not is_object(raw, path, errors):
        return {}
    assert isinstance(raw, Mapping)
    out: dict[str, str] = {}
    for key, value in raw.items():
        validator = identifiers.VALIDATORS.get(key)
        if validator is None:
            errors.add(
                join(path, key), f"unknown identifier; use {', '.join(identifiers.IDENTIFIER_KEYS)}"
            )
            continue
        if value is None:
            continue
        if not isinstance(value, str):
            errors.add(join(path, key), "must be text")
            continue
        try:
            out[key] = validator(value)
        except ValueError as exc:
            errors.add(join(path, key), str(exc))
    return out


def person_details(
    raw: Mapping[str, Any], path: str, errors: Errors, *, today: dt.date
) -> dict[str, Any]:
    """The person's own fields (not addresses or orders), normalised."""
    dob = date_field(raw, "date_of_birth", path, errors)
    if dob is not None and not dt.date(1900, 1, 1) <= dob <= today:
        errors.add(join(path, "date_of_birth"), "must be between 1900-01-01 and today")
    nationality = raw.get("nationality")
    if nationality != "not_recorded" and not (
        isinstance(nationality, str) and _NATIONALITY.fullmatch(nationality)
    ):
        errors.add(
            join(path, "nationality"), "must be an ISO 3166-1 alpha-3 code (GBR) or not_recorded"
        )
    language = raw.get("language")
    if not (isinstance(language, str) and _LANGUAGE.fullmatch(language)):
        errors.add(join(path, "language"), "must be an ISO 639-1 code (en, pl, ro, ...)")
    return {
        "names": names(raw.get("names"), join(path, "names"), errors),
        "date_of_birth": dob,
        "sex": code(raw, "sex", SEX, path, errors),
        "gender": code(raw, "gender", GENDER, path, errors),
        "ethnicity": code(raw, "ethnicity", ETHNICITY, path, errors),
        "disability": code(raw, "disability", DISABILITY, path, errors),
        "nationality": nationality,
        "religion": code(raw, "religion", RELIGION, path, errors),
        "language": language,
        "interpreter_needed": boolean(raw, "interpreter_needed", path, errors),
        "restricted": boolean(raw, "restricted", path, errors),
        "identifiers": identifier_set(raw.get("identifiers"), join(path, "identifiers"), errors),
    }


def address(raw: object, path: str, errors: Errors) -> dict[str, Any] | None:
    if not is_object(raw, path, errors):
        return None
    assert isinstance(raw, Mapping)
    before = len(errors.items)
    out: dict[str, Any] = {
        "ref": text(raw, "ref", path, errors, max_len=40),
        "line1": text(raw, "line1", path, errors),
        "line2": text(raw, "line2", path, errors, optional=True),
        "town": text(raw, "town", path, errors, max_len=120),
        "postcode": None,
        "lat": number(raw, "lat", path, errors),
        "lon": number(raw, "lon", path, errors),
    }
    try:
        out["postcode"] = normalise_postcode(str(raw.get("postcode") or ""))
    except ValueError as exc:
        errors.add(join(path, "postcode"), str(exc))
    if (
        out["lat"] is not None
        and out["lon"] is not None
        and not in_great_britain(out["lon"], out["lat"])
    ):
        errors.add(join(path, "lat"), "the position must lie within Great Britain")
    return out if len(errors.items) == before else None


# Orders ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefData:
    """The active regions and delivery units (code -> region) orders are checked against."""

    regions: frozenset[str]
    delivery_units: Mapping[str, str | None]


def organisation(
    raw: Mapping[str, Any], key: str, path: str, errors: Errors
) -> tuple[str | None, str | None]:
    value = raw.get(key)
    here = join(path, key)
    if not is_object(value, here, errors):
        return None, None
    assert isinstance(value, Mapping)
    return code(value, "kind", ORG_KINDS, here, errors), text(value, "name", here, errors)


def order_terms(
    raw: Mapping[str, Any], path: str, errors: Errors, refdata: RefData
) -> dict[str, Any]:
    """An order's own fields (not conditions or allocations), normalised; status unchecked here."""
    from tagwatch.cases.lifecycle import END_REASONS, STATUSES

    ref = raw.get("ref")
    if not isinstance(ref, str) or not _ORDER_REF.fullmatch(ref):
        errors.add(join(path, "ref"), "must be ORD followed by digits")
    status = code(raw, "status", STATUSES, path, errors)
    end_reason = raw.get("end_reason")
    if status == "ended" and end_reason not in END_REASONS:
        errors.add(
            join(path, "end_reason"), f"an ended order needs one of {', '.join(END_REASONS)}"
        )
    elif status != "ended" and end_reason is not None:
        errors.add(join(path, "end_reason"), "only an ended order has an end reason")
    notifying = organisation(raw, "notifying_organisation", path, errors)
    responsible = organisation(raw, "responsible_organisation", path, errors)
    region = raw.get("region")
    if region not in refdata.regions:
        errors.add(join(path, "region"), f"{region!r} is not an active probation region")
    unit = raw.get("delivery_unit")
    if unit not in refdata.delivery_units:
        errors.add(
            join(path, "delivery_unit"), f"{unit!r} is not an active probation delivery unit"
        )
    elif region in refdata.regions and refdata.delivery_units[str(unit)] != region:
        errors.add(join(path, "delivery_unit"), f"{unit} is not in region {region}")
    officer = raw.get("responsible_officer")
    if not isinstance(officer, str) or not _USERNAME.fullmatch(officer):
        errors.add(join(path, "responsible_officer"), "must be a username")
    start = date_field(raw, "start_date", path, errors)
    end = date_field(raw, "end_date", path, errors)
    if start and end and end <= start:
        errors.add(join(path, "end_date"), "must be after start_date")
    return {
        "ref": ref,
        "type": code(raw, "type", ORDER_TYPES, path, errors),
        "status": status,
        "end_reason": end_reason,
        "notifying_org_kind": notifying[0],
        "notifying_org_name": notifying[1],
        "responsible_org_kind": responsible[0],
        "responsible_org_name": responsible[1],
        "region_code": region,
        "delivery_unit_code": unit,
        "responsible_officer": officer,
        "start_date": start,
        "end_date": end,
        "fitting_deadline": time_field(raw, "fitting_deadline", path, errors, optional=True),
    }


def periods(raw: object, path: str, errors: Errors, *, curfew: bool) -> list[dict[str, str]] | None:
    if not isinstance(raw, list):
        errors.add(path, "must be a list of periods")
        return None
    parsed, problems = timetable.parse_periods(raw)
    if not problems:
        problems = (
            timetable.curfew_problems(parsed) if curfew else timetable.overlap_problems(parsed)
        )
        if not problems:
            return [{"day": r["day"], "start": r["start"], "end": r["end"]} for r in raw]
    for p in problems:
        here = path if p.index is None else join(path, p.index)
        errors.add(join(here, p.field) if p.field else here, p.reason)
    return None


def release_day(raw: object, path: str, errors: Errors) -> dict[str, str] | None:
    if raw is None:
        return None
    if not is_object(raw, path, errors):
        return None
    assert isinstance(raw, Mapping)
    date_field(raw, "date", path, errors)
    for key in ("start", "end"):
        try:
            timetable.parse_clock(raw.get(key))
        except ValueError as exc:
            errors.add(join(path, key), str(exc))
    return {
        "date": str(raw.get("date")),
        "start": str(raw.get("start")),
        "end": str(raw.get("end")),
    }


def safeguarding_check(raw: object, path: str, errors: Errors) -> dict[str, Any] | None:
    if not is_object(raw, path, errors):
        return None
    assert isinstance(raw, Mapping)
    before = len(errors.items)
    out: dict[str, Any] = {
        "kind": code(raw, "kind", CHECK_KINDS, path, errors),
        "checked_by": text(raw, "checked_by", path, errors, max_len=120),
        "checked_at": time_field(raw, "checked_at", path, errors),
        "outcome": code(raw, "outcome", CHECK_OUTCOMES, path, errors),
    }
    return out if len(errors.items) == before else None


def appointment(raw: object, path: str, errors: Errors) -> dict[str, Any] | None:
    if not is_object(raw, path, errors):
        return None
    assert isinstance(raw, Mapping)
    before = len(errors.items)
    out: dict[str, Any] = {
        "name": text(raw, "name", path, errors),
        "lat": number(raw, "lat", path, errors),
        "lon": number(raw, "lon", path, errors),
        "radius_m": number(raw, "radius_m", path, errors),
        "start": time_field(raw, "start", path, errors),
        "end": time_field(raw, "end", path, errors),
    }
    if (
        out["lat"] is not None
        and out["lon"] is not None
        and not in_great_britain(out["lon"], out["lat"])
    ):
        errors.add(join(path, "lat"), "the position must lie within Great Britain")
    if out["radius_m"] is not None and not 0 < out["radius_m"] <= 10_000:
        errors.add(join(path, "radius_m"), "must be more than 0 and at most 10,000 metres")
    if out["start"] and out["end"] and out["end"] <= out["start"]:
        errors.add(join(path, "end"), "must be after start")
    if len(errors.items) != before:
        return None
    return {**out, "start": format_time(out["start"]), "end": format_time(out["end"])}


def condition(
    raw: object,
    path: str,
    errors: Errors,
    address_refs: Sequence[str],
    deferred_zones: list[tuple[str, object]] | None = None,
) -> dict[str, Any] | None:
    """A condition normalised; `address_ref` is kept as the ref (resolved by the caller).

    With `deferred_zones`, zone geometry is listed there (path, geometry) for the caller to
    check in one batch (`check_zones`) instead of one at a time.
    """
    if not is_object(raw, path, errors):
        return None
    assert isinstance(raw, Mapping)
    before = len(errors.items)
    kind = code(raw, "type", CONDITION_TYPES, path, errors)
    start = time_field(raw, "start", path, errors)
    end = time_field(raw, "end", path, errors, optional=True)
    if start and end and end <= start:
        errors.add(join(path, "end"), "must be after start")
    out: dict[str, Any] = {
        "type": kind, "start": start, "end": end, "address_ref": None, "name": None,
        "geometry": None, "timetable": None, "schedule": None, "release_day": None,
        "appointments": None, "safeguarding_checks": [],
    }  # fmt: skip
    if kind == "curfew":
        ref = raw.get("address_ref")
        if ref not in address_refs:
            errors.add(join(path, "address_ref"), f"{ref!r} is not one of the person's addresses")
        out["address_ref"] = ref
        out["timetable"] = periods(
            raw.get("timetable"), join(path, "timetable"), errors, curfew=True
        )
        out["release_day"] = release_day(raw.get("release_day"), join(path, "release_day"), errors)
        checks = is_list(raw, "safeguarding_checks", path, errors)
        out["safeguarding_checks"] = [
            c for i, item in enumerate(checks)
            if (c := safeguarding_check(item, join(join(path, "safeguarding_checks"), i), errors))
        ]  # fmt: skip
    elif kind in ("exclusion_zone", "inclusion_zone"):
        out["name"] = text(raw, "name", path, errors)
        geometry = raw.get("geometry")
        here = join(path, "geometry")
        if deferred_zones is None:
            check_zones([(here, geometry)], errors)
        else:
            deferred_zones.append((here, geometry))
        out["geometry"] = geometry
        if raw.get("schedule") is not None:
            out["schedule"] = periods(
                raw.get("schedule"), join(path, "schedule"), errors, curfew=False
            )
    elif kind == "attendance":
        items = is_list(raw, "appointments", path, errors, optional=False)
        out["appointments"] = [
            a for i, item in enumerate(items)
            if (a := appointment(item, join(join(path, "appointments"), i), errors))
        ]  # fmt: skip
    return out if len(errors.items) == before else None


def check_zones(items: Sequence[tuple[str, object]], errors: Errors) -> None:
    """Check zone geometries, given as (path, geometry), in one batch."""
    found = zones.zone_problems_many([geometry for _path, geometry in items])
    for (path, _geometry), problems in zip(items, found, strict=True):
        for key, reason in problems:
            errors.add(join(path, key) if key else path, reason)


def curfew_activation_problems(checks: Sequence[Mapping[str, Any]]) -> str | None:
    """Why a curfew address's safeguarding checks do not allow the order to be active, if so."""
    if any(c["outcome"] == "concerns_unsuitable" for c in checks):
        return "a safeguarding check found the curfew address unsuitable"
    missing = [k for k in CHECK_KINDS if not any(c["kind"] == k for c in checks)]
    if missing:
        lacking = " and a ".join(k.replace("_", " ") for k in missing)
        return f"the curfew address lacks a {lacking} check"
    return None


def device(raw: object, path: str, errors: Errors) -> dict[str, Any] | None:
    if not is_object(raw, path, errors):
        return None
    assert isinstance(raw, Mapping)
    before = len(errors.items)
    out: dict[str, Any] = {
        "serial": text(raw, "serial", path, errors, max_len=60),
        "type": code(raw, "type", DEVICE_TYPES, path, errors),
        "model": text(raw, "model", path, errors, max_len=120),
        "batch": text(raw, "batch", path, errors, max_len=120),
    }
    return out if len(errors.items) == before else None


def allocation(raw: object, path: str, errors: Errors) -> dict[str, Any] | None:
    if not is_object(raw, path, errors):
        return None
    assert isinstance(raw, Mapping)
    before = len(errors.items)
    out: dict[str, Any] = {
        "device": text(raw, "device", path, errors, max_len=60),
        "fitted_at": time_field(raw, "fitted_at", path, errors),
        "removed_at": time_field(raw, "removed_at", path, errors, optional=True),
    }
    if out["fitted_at"] and out["removed_at"] and out["removed_at"] <= out["fitted_at"]:
        errors.add(join(path, "removed_at"), "must be after fitted_at")
    return out if len(errors.items) == before else None


def spans_overlap(
    a: tuple[dt.datetime, dt.datetime | None], b: tuple[dt.datetime, dt.datetime | None]
) -> bool:
    """Whether two [fitted, removed) spans share a moment; None is still fitted."""
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return a[0] < (b[1] or far) and b[0] < (a[1] or far)
