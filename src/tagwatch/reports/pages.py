"""Management information pages: statistics, data quality and the data dictionary."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from tagwatch.access.audit import record
from tagwatch.access.permissions import require
from tagwatch.access.principal import Principal
from tagwatch.access.pseudonymise import pseudonym
from tagwatch.db.base import utcnow
from tagwatch.db.deps import DbSession
from tagwatch.reports import dataquality as dq
from tagwatch.reports import dictionary, service
from tagwatch.reports.charts import bar_chart
from tagwatch.reports.statistics import TOTAL, Period, Table, breakdowns
from tagwatch.web.portal.render import render

router = APIRouter(include_in_schema=False)
WORST_RECORDS = 50
TREND_DAYS = 30


def _default_period(today: dt.date) -> Period:
    """The last complete calendar quarter."""
    quarter_start = dt.date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    end = quarter_start - dt.timedelta(days=1)
    return Period(dt.date(end.year, 3 * ((end.month - 1) // 3) + 1, 1), end)


def _chart_column(table: Table) -> str:
    rates = [r.label for r in table.measure.rates]
    if rates:
        return rates[-1]
    return TOTAL if table.measure.part_total else table.measure.extras[0]


@router.get("/reports/statistics", response_class=HTMLResponse)
def statistics_page(
    request: Request, session: DbSession, principal: Principal = require("report:read")
) -> Response:
    params = request.query_params
    default = _default_period(utcnow().date())
    errors: dict[str, str] = {}
    try:
        period = service.parse_period(
            params.get("from") or default.start, params.get("to") or default.end
        )
    except ValueError as error:
        field = str(error).split(":")[0]
        errors[field if field in ("from", "to") else "to"] = str(error).split(": ", 1)[-1]
        period = default
    published = params.get("published") == "1" and principal.has("report:publish")
    choices = {b.key: b.heading for b in breakdowns({}, {})}
    by = params.get("by") or ""
    by = by if by in choices else "region"
    publication = service.statistics(session, period, published=published)
    letter = "abcdefghijklmnopqrstuvwxyz"[list(choices).index(by)]
    shown = [t for t in publication.tables if t.key.endswith(letter)]
    sections = []
    for table in shown:
        column = _chart_column(table)
        labels = table.rows[:-1] or table.rows
        values = [table.cell(r, column) for r in range(len(labels))]
        sections.append(
            {
                "table": table,
                "grid": table.grid(),
                "chart": bar_chart(
                    f"chart-{table.key}", f"{table.title}: {column}", labels, values
                ),
                "chart_column": column,
            }
        )
    query = f"from={period.start}&to={period.end}" + ("&published=1" if published else "")
    return render(
        request,
        "reports/statistics.html",
        {
            "title": "Statistics",
            "period": period,
            "publication": publication,
            "sections": sections,
            "by": by,
            "errors": errors,
            "error_list": [{"text": t, "href": f"#{k}"} for k, t in errors.items()],
            "by_items": [{"value": k, "text": v, "selected": k == by} for k, v in choices.items()],
            "published": published,
            "can_publish": principal.has("report:publish"),
            "query": query,
        },
        status_code=400 if errors else 200,
    )


@router.get("/reports/statistics.{fmt}")
def statistics_download(
    fmt: str, request: Request, session: DbSession, principal: Principal = require("report:read")
) -> Response:
    params = request.query_params
    published = params.get("published") == "1"
    if published and not principal.has("report:publish"):
        return Response("Needs permission report:publish", status_code=403)
    try:
        period = service.parse_period(params.get("from", ""), params.get("to", ""))
        content = service.export(session, principal, period, fmt, published=published)
    except ValueError as error:
        return Response(str(error), status_code=400, media_type="text/plain")
    name = f"em-statistics-{period.start}-to-{period.end}{'-published' if published else ''}.{fmt}"
    return Response(
        content,
        media_type=service.FORMATS[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _subject(
    principal: Principal, request: Request, person_id: int | None, ref: str | None
) -> dict[str, Any]:
    """How a record's person is shown: a link for those who may see people, else a pseudonym."""
    if person_id is None:
        return {"text": "", "href": None}
    if principal.has("person:read"):
        return {"text": ref or str(person_id), "href": f"/people/{person_id}"}
    return {
        "text": pseudonym(ref or person_id, request.app.state.settings.pseudonym_key),
        "href": None,
    }


@router.get("/reports/data-quality", response_class=HTMLResponse)
def data_quality_page(
    request: Request, session: DbSession, principal: Principal = require("dq:read")
) -> Response:
    from tagwatch.cases.models import Person

    now = utcnow()
    scores, failures = dq.evaluate(session, now)
    units = sorted({s.delivery_unit_code for s in scores})
    unit = request.query_params.get("unit") or principal.delivery_unit_code or ""
    if principal.delivery_unit_code:
        unit = principal.delivery_unit_code  # a manager sees their own unit's records
    unit = unit if unit in units else ""
    shown = [s for s in scores if s.delivery_unit_code == unit] if unit else dq.overall(scores)
    failing = [f for f in failures if not unit or f.delivery_unit_code == unit]
    by_person: dict[int | None, list[dq.Failure]] = defaultdict(list)
    for failure in failing:
        by_person[failure.person_id].append(failure)
    worst = sorted(by_person.items(), key=lambda item: (-len(item[1]), item[0] or 0))[
        :WORST_RECORDS
    ]
    refs = {
        p.id: p.ref
        for p in session.query(Person).filter(Person.id.in_([pid for pid, _ in worst if pid]))
    }
    worst_rows = [
        {
            "subject": _subject(principal, request, pid, refs.get(pid or 0)),
            "failures": items,
            "count": len(items),
        }
        for pid, items in worst
    ]
    trend = dq.trend(session, unit or None, TREND_DAYS, now.date())
    record(
        session,
        principal,
        "dq.view",
        subject_type="data_quality",
        subject_id=unit or "all",
        detail={"records_listed": len(worst_rows)},
    )
    return render(
        request,
        "reports/data_quality.html",
        {
            "title": "Data quality",
            "rules": dq.RULES_BY_ID,
            "scores": shown,
            "unit": unit,
            "unit_items": [{"value": "", "text": "All delivery units", "selected": not unit}]
            + [{"value": u, "text": u, "selected": u == unit} for u in units],
            "worst": worst_rows,
            "failing_total": len(failing),
            "trend": trend,
            "rule_counts": Counter(f.rule_id for f in failing),
            "locked_unit": bool(principal.delivery_unit_code),
            "identified": principal.has("person:read"),
        },
    )


@router.get("/reports/data-dictionary", response_class=HTMLResponse)
def data_dictionary_page(
    request: Request, principal: Principal = require("dictionary:read")
) -> Response:
    return render(
        request,
        "reports/dictionary.html",
        {
            "title": "Data dictionary",
            "tables": dictionary.entries(),
            "retention_note": dictionary.RETENTION_NOTE,
        },
    )
