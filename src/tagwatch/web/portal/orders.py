"""Creating and varying an order through a form; the cases service validates, as for the API.

The form is posted as the same order document the API takes (docs/order-format.md). When the
service refuses it, nothing is kept (the transaction is rolled back) and its `path: reason`
errors are shown in an error summary linking to the fields.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile

from tagwatch.access.permissions import require
from tagwatch.access.principal import Principal
from tagwatch.cases import service as cases
from tagwatch.cases.models import Order, Person
from tagwatch.cases.refdata import list_values
from tagwatch.cases.validation import CHECK_OUTCOMES, ORDER_TYPES, ORG_KINDS, ValidationFailed
from tagwatch.db.base import utcnow
from tagwatch.db.deps import DbSession, ReadSession
from tagwatch.london import LONDON
from tagwatch.web.portal import people
from tagwatch.web.portal.order_form import CHECK_KINDS, OrderForm, conditions, map_errors, read_form
from tagwatch.web.portal.render import render
from tagwatch.web.portal.timetable import DAYS
from tagwatch.web.portal.zone_files import ZoneFileError, read_zone_file

router = APIRouter(include_in_schema=False)

MAX_ZONE_FILE_BYTES = 2_000_000
CHECK_LABELS = {
    "domestic_abuse": "Domestic abuse check of the address",
    "child_safeguarding": "Child safeguarding check of the address",
}
FIELD_ORDER = (
    "reason", "type", "start_date", "end_date", "notifying_kind", "notifying_name", "region",
    "delivery_unit", "responsible_officer", "curfew_address",
    *[f"curfew_{d}_{edge}" for d in DAYS for edge in ("start", "end")],
    *[f"check_{k}" for k in CHECK_KINDS], "zone_name", "zone_file", "zone_geometry",
)  # fmt: skip


def _items(options: list[tuple[str, str]], selected: str) -> list[dict[str, Any]]:
    return [{"value": v, "text": t, "selected": v == selected} for v, t in options]


def _form_page(
    request: Request,
    session: Session,
    person: Person,
    form: OrderForm,
    *,
    varying: Order | None,
) -> Response:
    v = form.values
    regions = list_values(session, "region", active_only=True)
    units = list_values(session, "delivery_unit", active_only=True)
    label = people.label_of(person)
    ordered = sorted(
        form.errors.items(), key=lambda kv: FIELD_ORDER.index(kv[0]) if kv[0] in FIELD_ORDER else 99
    )
    first_id = {"curfew_address": "curfew_address", "zone_kind": "zone_kind"}
    return render(
        request,
        "portal/order_form.html",
        {
            "title": ("Vary order " + varying.ref if varying else "Create an order")
            + f" – {label}",
            "heading": f"Vary order {varying.ref}" if varying else "Create an order",
            "uses_map": True,
            "varying": varying is not None,
            "person_id": person.id,
            "person_label": label,
            "map_centre": [person.addresses[0].lat, person.addresses[0].lon]
            if person.addresses
            else None,
            "action": f"/orders/{varying.ref}/vary"
            if varying
            else f"/people/{person.id}/orders/new",
            "submit_label": "Save the changes" if varying else "Create the order",
            "form": v,
            "days": DAYS,
            "field_errors": form.errors,
            "errors": [
                {"text": text, "href": f"#{first_id.get(name, name)}"} for name, text in ordered
            ],
            "type_items": _items([(t, people.humanise(t)) for t in ORDER_TYPES], v.get("type", "")),
            "notifying_items": _items(
                [(k, people.humanise(k)) for k in ORG_KINDS], v.get("notifying_kind", "court")
            ),
            "region_items": _items([(r.code, r.label) for r in regions], v.get("region", "")),
            "unit_items": _items([(u.code, u.label) for u in units], v.get("delivery_unit", "")),
            "address_items": [
                {
                    "value": a.ref,
                    "text": f"{a.line1}, {a.town} {a.postcode}",
                    "checked": v.get("curfew_address") == a.ref,
                }
                for a in person.addresses
            ],
            "checks": [(k, CHECK_LABELS[k]) for k in CHECK_KINDS],
            "check_items": {
                kind: [
                    {"value": o, "text": people.humanise(o), "checked": v.get(f"check_{kind}") == o}
                    for o in (*CHECK_OUTCOMES, "not_done")
                ]
                for kind in CHECK_KINDS
            },
            "zone_kind_items": [
                {"value": k, "text": t, "checked": v.get("zone_kind", "none") == k}
                for k, t in (
                    ("none", "No zone"),
                    ("exclusion_zone", "Exclusion zone"),
                    ("inclusion_zone", "Inclusion zone"),
                )
            ],
        },
        status_code=400 if form.errors else 200,
    )


async def _posted(request: Request) -> tuple[dict[str, str], UploadFile | None]:
    data = await request.form()
    values = {k: v for k, v in data.items() if isinstance(v, str)}
    upload = data.get("zone_file")
    return values, upload if isinstance(upload, UploadFile) and upload.filename else None


async def _read_upload(form: OrderForm, upload: UploadFile | None) -> None:
    """An uploaded zone file takes the place of the geometry field."""
    if upload is None:
        return
    content = await upload.read(MAX_ZONE_FILE_BYTES + 1)
    if len(content) > MAX_ZONE_FILE_BYTES:
        form.errors["zone_file"] = "The selected file must be smaller than 2 MB"
        return
    try:
        geometry = read_zone_file(upload.filename or "", content)
    except ZoneFileError as error:
        form.errors["zone_file"] = str(error)
        return
    import json

    form.values["zone_geometry"] = json.dumps(geometry)
    form.zone_geometry = geometry
    form.errors.pop("zone_geometry", None)
    if form.values.get("zone_kind", "none") == "none":
        form.values["zone_kind"] = "exclusion_zone"


def _require_address(form: OrderForm, person: Person) -> None:
    has_curfew = any(form.values.get(f"curfew_{d}_start") for d in DAYS)
    if has_curfew and not form.values.get("curfew_address"):
        if len(person.addresses) == 1:
            form.values["curfew_address"] = person.addresses[0].ref
        else:
            form.errors["curfew_address"] = "Select the curfew address"


def _start_of(date_text: str) -> dt.datetime:
    try:
        day = dt.date.fromisoformat(date_text)
    except ValueError:
        day = utcnow().astimezone(LONDON).date()
    return dt.datetime.combine(day, dt.time(), LONDON).astimezone(dt.UTC)


def _terms(values: dict[str, str]) -> dict[str, Any]:
    return {
        "type": values.get("type", ""),
        "start_date": values.get("start_date", ""),
        "end_date": values.get("end_date", ""),
        "notifying_organisation": {
            "kind": values.get("notifying_kind", ""),
            "name": values.get("notifying_name", ""),
        },
        "responsible_organisation": {
            "kind": "probation",
            "name": values.get("delivery_unit", "") or "Probation",
        },
        "region": values.get("region", ""),
        "delivery_unit": values.get("delivery_unit", ""),
        "responsible_officer": values.get("responsible_officer", ""),
        "fitting_deadline": None,
    }


def _refused(
    session: Session, form: OrderForm, messages: list[str], condition_types: list[str]
) -> None:
    session.rollback()
    curfew = condition_types.index("curfew") if "curfew" in condition_types else None
    zone = next((i for i, t in enumerate(condition_types) if t.endswith("_zone")), None)
    for name, text in map_errors(messages, form, curfew, zone).items():
        form.errors.setdefault(name, text)


@router.get("/people/{person_id}/orders/new", response_class=HTMLResponse)
def new_order(
    request: Request,
    person_id: int,
    session: ReadSession,
    principal: Principal = require("order:write"),
) -> Response:
    person = people.person_or_404(session, principal, person_id)
    today = utcnow().astimezone(LONDON).date()
    defaults = {
        "start_date": today.isoformat(),
        "end_date": today.replace(year=today.year + 1).isoformat()
        if not (today.month == 2 and today.day == 29)
        else (today + dt.timedelta(days=365)).isoformat(),
        "responsible_officer": principal.username,
        "delivery_unit": principal.delivery_unit_code or "",
        "region": principal.region_code or "",
        "notifying_kind": "court",
    }
    return _form_page(request, session, person, OrderForm(values=defaults), varying=None)


@router.post("/people/{person_id}/orders/new", response_class=HTMLResponse)
async def create_order(
    request: Request,
    person_id: int,
    session: DbSession,
    principal: Principal = require("order:write"),
) -> Response:
    person = people.person_or_404(session, principal, person_id)
    values, upload = await _posted(request)
    form = read_form(values)
    await _read_upload(form, upload)
    _require_address(form, person)
    if not form.errors:
        found = conditions(
            form, _start_of(form.values.get("start_date", "")), utcnow(), principal.username
        )
        document = {**_terms(form.values), "conditions": found, "reason": "created"}
        try:
            cases.create_order(session, principal, person.ref, document)
        except ValidationFailed as refused:
            _refused(session, form, refused.errors, [c["type"] for c in found])
        except cases.Conflict as conflict:
            session.rollback()
            form.errors["type"] = str(conflict)
    if form.errors:
        person = people.person_or_404(session, principal, person_id)
        return _form_page(request, session, person, form, varying=None)
    return RedirectResponse(f"/people/{person_id}", status_code=303)


def _order_or_404(session: Session, principal: Principal, ref: str) -> Order:
    try:
        return cases.get_order(session, principal, ref)
    except cases.NotFound as missing:
        raise HTTPException(404, str(missing)) from missing


def _order_values(order: Order) -> dict[str, str]:
    return {
        "type": order.type,
        "start_date": order.start_date.isoformat(),
        "end_date": order.end_date.isoformat(),
        "notifying_kind": order.notifying_org_kind,
        "notifying_name": order.notifying_org_name,
        "region": order.region_code,
        "delivery_unit": order.delivery_unit_code,
        "responsible_officer": order.responsible_officer,
    }


@router.get("/orders/{ref}/vary", response_class=HTMLResponse)
def vary_form(
    request: Request, ref: str, session: ReadSession, principal: Principal = require("order:write")
) -> Response:
    order = _order_or_404(session, principal, ref)
    person = people.person_or_404(session, principal, order.person_id)
    return _form_page(
        request, session, person, OrderForm(values=_order_values(order)), varying=order
    )


@router.post("/orders/{ref}/vary", response_class=HTMLResponse)
async def vary_order(
    request: Request, ref: str, session: DbSession, principal: Principal = require("order:write")
) -> Response:
    order = _order_or_404(session, principal, ref)
    person_id = order.person_id
    values, upload = await _posted(request)
    form = read_form(values)
    await _read_upload(form, upload)
    _require_address(form, people.person_or_404(session, principal, person_id))
    reason = form.values.get("reason", "")
    if not reason:
        form.errors["reason"] = "Enter why the order is changing"
    if not form.errors:
        current = _order_values(order)
        changes = {k: v for k, v in _terms(form.values).items() if k in cases.VARIABLE_TERMS}
        changed = {
            k: v
            for k, v in changes.items()
            if k not in ("responsible_organisation", "fitting_deadline") and _differs(k, v, current)
        }
        found = conditions(form, utcnow(), utcnow(), principal.username)
        try:
            if changed:
                cases.vary_order(session, principal, ref, changed, reason)
            for index, condition in enumerate(found):
                try:
                    cases.add_condition(session, principal, ref, condition, reason)
                except ValidationFailed as refused:
                    raise ValidationFailed(
                        [
                            f"conditions[{index}].{m}" if not m.startswith("conditions") else m
                            for m in refused.errors
                        ]
                    ) from refused
            if not changed and not found:
                raise ValidationFailed(
                    ["reason: nothing would change: change a term or add a condition"]
                )
        except ValidationFailed as refused:
            _refused(session, form, refused.errors, [c["type"] for c in found])
        except cases.Conflict as conflict:
            session.rollback()
            form.errors["reason"] = str(conflict)
    if form.errors:
        order = _order_or_404(session, principal, ref)
        person = people.person_or_404(session, principal, person_id)
        return _form_page(request, session, person, form, varying=order)
    return RedirectResponse(f"/people/{person_id}", status_code=303)


def _differs(key: str, value: Any, current: dict[str, str]) -> bool:
    if key == "notifying_organisation":
        return bool(value != {"kind": current["notifying_kind"], "name": current["notifying_name"]})
    return str(value) != current.get(key, "")
