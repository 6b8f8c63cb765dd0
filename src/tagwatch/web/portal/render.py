"""Rendering a portal page: the template, the caller, and the map settings every map needs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from sqlalchemy.orm import Session

from tagwatch.access.audit import reading
from tagwatch.access.middleware import confirmed_caller
from tagwatch.access.principal import Principal
from tagwatch.web.templating import templates

# Pages a process builds at once. Python runs one thread of a process at a time, so more
# threads do not build pages sooner: each takes turns at the interpreter lock with the others,
# and a turn ends only after a switch interval (5 ms) or a query, so every page in flight
# finishes late. Two keep the process busy while one waits on the database.
PAGE_THREADS = 2


def _page_threads(app: FastAPI) -> anyio.CapacityLimiter:
    limiter: anyio.CapacityLimiter | None = getattr(app.state, "page_threads", None)
    if limiter is None:
        limiter = app.state.page_threads = anyio.CapacityLimiter(PAGE_THREADS)
    return limiter


async def read_page(
    request: Request, principal: Principal, build: Callable[[Session, Principal], Response]
) -> Response:
    """A page that only reads: `build` reads, audits and renders in a `reading` session.

    The same as a sync route taking `ReadSession`, in one trip to a thread instead of three
    (the session's start, the route, the session's end): the reads hold no lock, and the
    audit entries are appended (durably, shared with concurrent views) before this returns,
    so before the page is sent; if `build` raises, nothing is appended.

    `principal` is what the route's guard admitted. A signed-in caller admitted on trust (the
    route is marked `confirms_caller_in_its_reads`) is first confirmed against their account in
    the same transaction, and `build` gets the caller as the account says now.
    """
    factory = request.app.state.sessionmaker

    def run() -> Response:
        with reading(factory) as session:
            return build(session, confirmed_caller(request, session, principal))

    return await anyio.to_thread.run_sync(run, limiter=_page_threads(request.app))


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    settings = request.app.state.settings
    full = {
        "tile_url": settings.tile_url,
        "tile_attribution": settings.tile_attribution,
        **context,
    }
    return templates().TemplateResponse(request, template, full, status_code=status_code)


def json_script(element_id: str, data: Any) -> Markup:
    """Data for a page's script as a JSON block (not executed, so the CSP allows it)."""
    payload = json.dumps(data, separators=(",", ":"), default=str)
    # `</` inside a script element would end it early.
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(f'<script type="application/json" id="{element_id}">{payload}</script>')
