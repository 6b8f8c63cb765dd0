"""JSON statistics and data quality scores."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query

from tagwatch.access.permissions import require
from tagwatch.access.principal import Principal
from tagwatch.db.base import utcnow
from tagwatch.db.deps import DbSession
from tagwatch.reports import dataquality as dq
from tagwatch.reports import service

router = APIRouter(prefix="/reports", tags=["reports"])


@router.get("/statistics")
def statistics(
    session: DbSession,
    start: str = Query(..., alias="from", description="first day, YYYY-MM-DD"),
    end: str = Query(..., alias="to", description="last day, YYYY-MM-DD"),
    published: bool = False,
    principal: Principal = require("report:read"),
) -> dict[str, Any]:
    """Every table for the period; published=true suppresses small numbers."""
    if published and not principal.has("report:publish"):
        raise HTTPException(403, "Needs permission report:publish")
    try:
        period = service.parse_period(start, end)
    except ValueError as error:
        raise HTTPException(422, str(error)) from None
    publication = service.statistics(session, period, published=published)
    return {
        "period": {"from": str(period.start), "to": str(period.end)},
        "threshold": publication.threshold,
        "tables": [
            {
                "key": t.key,
                "title": t.title,
                "row_heading": t.row_heading,
                "rows": t.rows,
                "columns": t.columns,
                "values": t.grid(),
                "notes": list(t.notes),
            }
            for t in publication.tables
        ],
        "performance": publication.performance,
        "notes": {str(k): v for k, v in publication.notes.items()},
    }


@router.get("/data-quality")
def data_quality(
    session: DbSession, principal: Principal = require("dq:read")
) -> list[dict[str, Any]]:
    """Each rule's score by delivery unit (counts only, no records)."""
    scores, _ = dq.evaluate(session, utcnow())
    return [
        {
            "rule_id": s.rule_id,
            "dimension": dq.RULES_BY_ID[s.rule_id].dimension,
            "delivery_unit_code": s.delivery_unit_code,
            "checked": s.checked,
            "failed": s.failed,
            "score": s.score,
            "threshold": dq.RULES_BY_ID[s.rule_id].threshold,
        }
        for s in scores
    ]
