"""The order form's fields as an order document (docs/order-format.md), and back again.

The form posts the same document the API takes, so the cases service validates both the
same way; its `path: reason` errors are mapped back onto the form's fields here.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tagwatch.web.portal.timetable import DAYS

CHECK_KINDS = ("domestic_abuse", "child_safeguarding")
CURFEW = 0  # the curfew is always the form's first condition, a zone its second


@dataclass
class OrderForm:
    values: dict[str, str]
    zone_geometry: dict[str, Any] | None = None
    errors: dict[str, str] = field(default_factory=dict)
    # Where each timetable entry of the document came from, to point errors at the field.
    period_days: list[str] = field(default_factory=list)

    @property
    def has_zone(self) -> bool:
        return self.values.get("zone_kind", "none") in ("exclusion_zone", "inclusion_zone")


def read_form(values: Mapping[str, str]) -> OrderForm:
    form = OrderForm(values={k: (v or "").strip() for k, v in values.items()})
    raw = form.values.get("zone_geometry", "")
    if form.has_zone:
        if not raw:
            form.errors["zone_geometry"] = (
                "Draw the zone on the map, upload a file or paste its GeoJSON"
            )
        else:
            try:
                form.zone_geometry = json.loads(raw)
            except json.JSONDecodeError as error:
                form.errors["zone_geometry"] = f"Zone geometry is not valid GeoJSON: {error.msg}"
    for day in DAYS:
        start, end = (
            form.values.get(f"curfew_{day}_start", ""),
            form.values.get(f"curfew_{day}_end", ""),
        )
        if bool(start) != bool(end):
            missing = f"curfew_{day}_end" if start else f"curfew_{day}_start"
            form.errors[missing] = (
                f"Enter when {day.capitalize()}'s curfew {'ends' if start else 'starts'}"
            )
    return form


def conditions(
    form: OrderForm, start: dt.datetime, now: dt.datetime, checked_by: str
) -> list[dict[str, Any]]:
    v = form.values
    found: list[dict[str, Any]] = []
    timetable = []
    form.period_days = []
    for day in DAYS:
        if v.get(f"curfew_{day}_start") and v.get(f"curfew_{day}_end"):
            timetable.append(
                {"day": day, "start": v[f"curfew_{day}_start"], "end": v[f"curfew_{day}_end"]}
            )
            form.period_days.append(day)
    if timetable or v.get("curfew_address"):
        checks = [
            {
                "kind": kind,
                "checked_by": checked_by,
                "checked_at": _z(now),
                "outcome": v[f"check_{kind}"],
            }
            for kind in CHECK_KINDS
            if v.get(f"check_{kind}") and v[f"check_{kind}"] != "not_done"
        ]
        found.append(
            {
                "type": "curfew",
                "start": _z(start),
                "end": None,
                "address_ref": v.get("curfew_address") or None,
                "timetable": timetable,
                "release_day": None,
                "safeguarding_checks": checks,
            }
        )
    if form.has_zone and form.zone_geometry is not None:
        found.append(
            {
                "type": v["zone_kind"],
                "start": _z(start),
                "end": None,
                "name": v.get("zone_name") or None,
                "geometry": form.zone_geometry,
                "schedule": None,
            }
        )
    return found


def _z(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


_PATH = re.compile(r"^(?:.*?\.)?(?P<path>(?:conditions\[\d+\].*|[a-z_.\[\]0-9]+))$")
TOP_FIELDS = {
    "type": "type",
    "start_date": "start_date",
    "end_date": "end_date",
    "notifying_organisation": "notifying_kind",
    "notifying_organisation.kind": "notifying_kind",
    "notifying_organisation.name": "notifying_name",
    "region": "region",
    "delivery_unit": "delivery_unit",
    "responsible_officer": "responsible_officer",
    "reason": "reason",
}


def field_for(path: str, form: OrderForm, curfew_index: int | None, zone_index: int | None) -> str:
    """The form field an error path (`conditions[0].timetable[2].end`, ...) is about."""
    for prefix in ("orders[0].", "order."):
        path = path.removeprefix(prefix)
    if path in TOP_FIELDS:
        return TOP_FIELDS[path]
    match = re.match(r"conditions\[(\d+)\]\.?(.*)", path)
    if match:
        index, rest = int(match.group(1)), match.group(2)
        if index == zone_index:
            return "zone_name" if rest.startswith("name") else "zone_geometry"
        if index == curfew_index:
            period = re.match(r"timetable\[(\d+)\]\.?(start|end)?", rest)
            if period and int(period.group(1)) < len(form.period_days):
                day = form.period_days[int(period.group(1))]
                return f"curfew_{day}_{period.group(2) or 'start'}"
            if rest.startswith("timetable"):
                return f"curfew_{form.period_days[0] if form.period_days else 'monday'}_start"
            check = re.match(r"safeguarding_checks(?:\[(\d+)\])?", rest)
            if check:
                return "check_domestic_abuse"
            if rest.startswith("address"):
                return "curfew_address"
            return "curfew_monday_start"
    head = path.split(".")[0].split("[")[0]
    return TOP_FIELDS.get(head, "type")


def map_errors(
    messages: list[str], form: OrderForm, curfew_index: int | None, zone_index: int | None
) -> dict[str, str]:
    """`path: reason` messages onto fields; the first message for a field wins."""
    mapped: dict[str, str] = {}
    for message in messages:
        path, sep, reason = message.partition(": ")
        if not sep:
            path, reason = "", message
        name = field_for(path, form, curfew_index, zone_index) if path else "type"
        mapped.setdefault(name, reason[:1].upper() + reason[1:])
    return mapped
