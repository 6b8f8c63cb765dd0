"""The live map: the caseload's latest positions, then new ones pushed as server-sent events."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from tagwatch.access.audit import reading, record
from tagwatch.access.permissions import require
from tagwatch.access.principal import Principal
from tagwatch.db.base import utcnow
from tagwatch.db.deps import ReadSession
from tagwatch.db.engine import read_only
from tagwatch.telemetry.repository import last_record_times, load_fixes
from tagwatch.web.portal.people import Tracked, scope_label, tracked_caseload
from tagwatch.web.portal.render import json_script, render

router = APIRouter(include_in_schema=False)

POLL_SECONDS = 1.5
# Devices buffer and upload late: look this far back for fixes not yet seen.
LOOKBACK = dt.timedelta(minutes=10)
# A stream ends after this long; the browser's EventSource reconnects by itself.
STREAM_LIFETIME = dt.timedelta(minutes=10)
# Who is in the caseload is re-read this often while a stream is open.
CASELOAD_REFRESH = dt.timedelta(minutes=1)


@dataclass
class Position:
    id: int
    name: str
    t_ms: int
    lat: float
    lon: float
    accuracy_m: float

    @property
    def t(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.t_ms / 1000, dt.UTC)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "t_ms": self.t_ms,
            "lat": round(self.lat, 6),
            "lon": round(self.lon, 6),
            "accuracy_m": round(self.accuracy_m, 1),
        }


def latest_positions(session: Session, people: list[Tracked]) -> list[Position]:
    """Each person's latest plausible fix over all their allocations."""
    owner = {a: p for p in people for a in p.allocation_ids}
    times = last_record_times(session, list(owner))
    best: dict[int, Position] = {}
    for allocation_id, (_any, fix_time) in times.items():
        if fix_time is None:
            continue
        fixes = load_fixes(session, start=fix_time, end=fix_time, allocation_ids=[allocation_id])
        if not len(fixes):
            continue
        person = owner[allocation_id]
        i = len(fixes) - 1
        position = Position(
            person.person_id,
            person.label,
            int(fixes.t_ms[i]),
            float(fixes.lat[i]),
            float(fixes.lon[i]),
            float(fixes.accuracy_m[i]),
        )
        if person.person_id not in best or best[person.person_id].t_ms < position.t_ms:
            best[person.person_id] = position
    return sorted(best.values(), key=lambda p: p.name)


def newer_positions(
    session: Session, people: list[Tracked], seen: dict[int, int], now: dt.datetime
) -> list[Position]:
    """Positions observed after the last one sent for each person (updates `seen`)."""
    owner = {a: p for p in people for a in p.allocation_ids}
    if not owner:
        return []
    fixes = load_fixes(
        session, start=now - LOOKBACK, end=now + LOOKBACK, allocation_ids=list(owner)
    )
    fresh: dict[int, Position] = {}
    for i in range(len(fixes)):
        person = owner[int(fixes.allocation_id[i])]
        t_ms = int(fixes.t_ms[i])
        if t_ms <= seen.get(person.person_id, 0):
            continue
        current = fresh.get(person.person_id)
        if current is None or current.t_ms < t_ms:
            fresh[person.person_id] = Position(
                person.person_id,
                person.label,
                t_ms,
                float(fixes.lat[i]),
                float(fixes.lon[i]),
                float(fixes.accuracy_m[i]),
            )
    for position in fresh.values():
        seen[position.id] = position.t_ms
    return list(fresh.values())


@router.get("/live", response_class=HTMLResponse)
def live_page(
    request: Request, session: ReadSession, principal: Principal = require("location:read")
) -> Response:
    record(session, principal, "location.live_map", subject_type="caseload")
    people = tracked_caseload(session, principal)
    positions = latest_positions(session, people)
    by_id = {p.id: p for p in positions}
    return render(
        request,
        "portal/live.html",
        {
            "title": "Live map",
            "uses_map": True,
            "scope_label": scope_label(principal),
            "people": [
                {
                    "id": t.person_id,
                    "name": t.label,
                    "t": by_id[t.person_id].t if t.person_id in by_id else None,
                    "lat": by_id[t.person_id].lat if t.person_id in by_id else None,
                    "lon": by_id[t.person_id].lon if t.person_id in by_id else None,
                }
                for t in people
            ],
            "live_json": json_script(
                "live-data",
                {
                    "people": [p.as_json() for p in positions],
                    "zones": [zone for t in people for zone in t.zones],
                },
            ),
        },
    )


@router.get("/live/stream")
async def live_stream(
    request: Request, principal: Principal = require("location:read")
) -> Response:
    factory = request.app.state.sessionmaker

    def caseload(audit: bool) -> list[Tracked]:
        with reading(factory) as session:
            if audit:
                record(session, principal, "location.live_stream", subject_type="caseload")
            return tracked_caseload(session, principal)

    def poll(people: list[Tracked], seen: dict[int, int]) -> list[Position]:
        with read_only(factory) as session:
            return newer_positions(session, people, seen, utcnow())

    async def events() -> AsyncIterator[str]:
        started = utcnow()
        people = await run_in_threadpool(caseload, True)
        refreshed = started
        seen: dict[int, int] = {}
        yield "retry: 2000\n\n"
        while utcnow() - started < STREAM_LIFETIME:
            if await request.is_disconnected():
                return
            if utcnow() - refreshed > CASELOAD_REFRESH:
                people = await run_in_threadpool(caseload, False)
                refreshed = utcnow()
            fresh = await run_in_threadpool(poll, people, seen)
            payload = json.dumps([p.as_json() for p in fresh], separators=(",", ":"))
            yield f"event: positions\ndata: {payload}\n\n"
            await asyncio.sleep(POLL_SECONDS)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
