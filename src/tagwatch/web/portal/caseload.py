"""My caseload: search, filter and sort the people in scope, each with compliance at a glance."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup, escape
from sqlalchemy.orm import Session

from tagwatch.access.audit import record
from tagwatch.access.permissions import confirms_caller_in_its_reads, require
from tagwatch.access.principal import Principal
from tagwatch.cases.repository import PersonListing
from tagwatch.db.base import utcnow
from tagwatch.london import london_time
from tagwatch.web.portal import people
from tagwatch.web.portal.glance import Glance, glance_for
from tagwatch.web.portal.render import read_page, render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 100
# Searches return at most this many people (a search, not a way to list everyone).
SEARCH_LIMIT = 500
SHOW = {
    "all": "Everyone",
    "violations": "With open violations",
    "alerts": "With unacknowledged alerts",
    "stale": "With no recent device data",
}
SORTS = ("name", "dob", "violations", "alerts", "last_seen")


@dataclass(frozen=True)
class CaseloadRow:
    person_id: int
    ref: str
    name: str
    sort_name: str
    date_of_birth: dt.date | None
    crn: str | None
    open_violations: int
    unacknowledged_alerts: int
    last_seen: dt.datetime | None
    stale: bool
    device_status: str


def _date_of_birth(day: str, month: str, year: str) -> tuple[dt.date | None, str | None]:
    if not (day or month or year):
        return None, None
    try:
        return dt.date(int(year), int(month), int(day)), None
    except ValueError:
        return None, "Date of birth must be a real date, like 27 3 1990"


def _entry_key(sort: str):  # type: ignore[no-untyped-def]
    if sort == "dob":
        return lambda e: (e.date_of_birth, e.family.casefold(), e.given.casefold())
    return lambda e: (e.family.casefold(), e.given.casefold(), e.id)


def _row(entry: PersonListing, glance: Glance | None, now: dt.datetime) -> CaseloadRow:
    glance = glance or Glance()
    return CaseloadRow(
        person_id=entry.id,
        ref=entry.ref,
        name=entry.label,
        sort_name=f"{entry.family} {entry.given}".casefold(),
        date_of_birth=entry.date_of_birth,
        crn=entry.crn,
        open_violations=glance.open_violations,
        unacknowledged_alerts=glance.unacknowledged_alerts,
        last_seen=glance.last_seen,
        stale=glance.stale(now),
        device_status=glance.device_status,
    )


def _tag(text: object, colour: str) -> str:
    """`status_tag` in `portal/macros.html`."""
    return f'<strong class="govuk-tag govuk-tag--{colour}">{escape(text)}</strong>'


def _table_row(row: CaseloadRow) -> str:
    """One person's row of the caseload table. Written here, not in the template: a caseload
    shows a hundred of them, and the template's loop cost more than the rest of the page."""
    if row.last_seen:
        seen = str(escape(london_time(row.last_seen)))
        if row.stale:
            seen += " " + _tag("No recent data", "yellow")
    else:
        seen = str(escape(row.device_status))
    born = row.date_of_birth.strftime("%-d %b %Y") if row.date_of_birth else ""
    violations = _tag(row.open_violations, "red") if row.open_violations else "0"
    alerts = _tag(row.unacknowledged_alerts, "orange") if row.unacknowledged_alerts else "0"
    return (
        '        <tr class="govuk-table__row">\n'
        f'          <td class="govuk-table__cell"><a class="govuk-link" href="/people/'
        f'{row.person_id}">{escape(row.name)}</a><br><span class="govuk-body-s">'
        f"{escape(row.ref)}</span></td>\n"
        f'          <td class="govuk-table__cell tw-nowrap">{born}</td>\n'
        f'          <td class="govuk-table__cell">{escape(row.crn or "")}</td>\n'
        f'          <td class="govuk-table__cell govuk-table__cell--numeric">{violations}</td>\n'
        f'          <td class="govuk-table__cell govuk-table__cell--numeric">{alerts}</td>\n'
        f'          <td class="govuk-table__cell">{seen}</td>\n'
        "        </tr>\n"
    )


def table_rows(rows: list[CaseloadRow]) -> Markup:
    return Markup("".join(_table_row(row) for row in rows))


def _sort_key(sort: str, now: dt.datetime):  # type: ignore[no-untyped-def]
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    return {
        "name": lambda r: (r.sort_name, r.person_id),
        "dob": lambda r: (r.date_of_birth or dt.date.min, r.sort_name),
        "violations": lambda r: (r.open_violations, r.sort_name),
        "alerts": lambda r: (r.unacknowledged_alerts, r.sort_name),
        "last_seen": lambda r: (r.last_seen or epoch, r.sort_name),
    }[sort]


@router.get("/caseload", response_class=HTMLResponse)
@confirms_caller_in_its_reads
async def caseload(request: Request, principal: Principal = require("person:read")) -> Response:
    return await read_page(
        request, principal, lambda session, caller: _caseload(request, session, caller)
    )


def _caseload(request: Request, session: Session, principal: Principal) -> Response:
    params = request.query_params
    q = params.get("q", "").strip()
    show = params.get("show", "all") if params.get("show") in SHOW else "all"
    sort = params.get("sort", "name") if params.get("sort") in SORTS else "name"
    direction = "desc" if params.get("direction") == "desc" else "asc"
    dob_parts = (params.get("dob-day", ""), params.get("dob-month", ""), params.get("dob-year", ""))
    dob, dob_error = _date_of_birth(*(p.strip() for p in dob_parts))
    field_errors = {"dob": dob_error} if dob_error else {}
    if q and not principal.has("person:search"):
        field_errors["q"] = "Your role cannot search by name or identifier"
    now = utcnow()
    terms = {
        k: v
        for k, v in {"q": q, "date_of_birth": dob, "show": None if show == "all" else show}.items()
        if v
    }
    record(
        session,
        principal,
        "person.search" if terms else "caseload.view",
        subject_type="caseload",
        detail={"terms": terms, "sort": sort, "direction": direction},
    )
    entries = (
        []
        if field_errors
        else people.caseload_entries(session, principal, q or None, dob, SEARCH_LIMIT)
    )
    # Counts are needed for everyone only when they decide the order or the filter.
    needs_all = show != "all" or sort in ("violations", "alerts", "last_seen")
    if not needs_all:
        entries.sort(key=_entry_key(sort), reverse=direction == "desc")
    glances = glance_for(session, [e.id for e in (entries if needs_all else entries[:PAGE_SIZE])])
    rows = [
        _row(entry, glances.get(entry.id), now)
        for entry in (entries if needs_all else entries[:PAGE_SIZE])
    ]
    if show == "violations":
        rows = [r for r in rows if r.open_violations]
    elif show == "alerts":
        rows = [r for r in rows if r.unacknowledged_alerts]
    elif show == "stale":
        rows = [r for r in rows if r.stale]
    if needs_all:
        rows.sort(key=_sort_key(sort, now), reverse=direction == "desc")
    total = len(rows) if needs_all else len(entries)

    def query_string(**changes: str) -> str:
        current = {
            "q": q,
            "dob-day": dob_parts[0],
            "dob-month": dob_parts[1],
            "dob-year": dob_parts[2],
            "show": show,
            "sort": sort,
            "direction": direction,
        }
        current.update(changes)
        return urlencode({k: v for k, v in current.items() if v})

    heading = "Delivery unit caseload" if "probation_manager" in principal.roles else "My caseload"
    return render(
        request,
        "portal/caseload.html",
        {
            "title": heading,
            "heading": heading,
            "rows": rows[:PAGE_SIZE],
            "table_rows": table_rows(rows[:PAGE_SIZE]),
            "total": total,
            "filtered": bool(terms),
            "q": q,
            "dob_day": dob_parts[0],
            "dob_month": dob_parts[1],
            "dob_year": dob_parts[2],
            "show_items": [{"value": k, "text": v, "selected": k == show} for k, v in SHOW.items()],
            "sort": sort,
            "direction": direction,
            "query_string": query_string,
            "field_errors": field_errors,
            "errors": [
                {"text": t, "href": "#dob-day" if k == "dob" else f"#{k}"}
                for k, t in field_errors.items()
            ],
        },
        status_code=400 if field_errors else 200,
    )
