"""The app factory: settings, store, middleware and every domain's routes."""

from __future__ import annotations

import gc
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tagwatch import __version__
from tagwatch.access.permissions import public
from tagwatch.background import Scheduler
from tagwatch.db.engine import make_engine, make_sessionmaker
from tagwatch.domains import domain_modules
from tagwatch.logging import configure_logging
from tagwatch.settings import Settings
from tagwatch.web.keepalive import KeepAliveLimitMiddleware
from tagwatch.web.templating import GOVUK_ASSETS, STATIC_DIR, templates

log = structlog.get_logger()


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(json=settings.log_json)
    app = FastAPI(
        title="tagwatch",
        lifespan=_lifespan,
        version=__version__,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings.resolved_database_url)
    app.state.sessionmaker = make_sessionmaker(app.state.engine, settings)

    for module in domain_modules("middleware"):
        module.install(app)
    app.add_middleware(RequestIdMiddleware)
    # Added last, so it runs first: it sees every response, errors included.
    app.add_middleware(KeepAliveLimitMiddleware, requests=settings.keepalive_requests)
    # Routes are matched in order, one by one. Pages come first: people wait on them, and no
    # page path begins with /api/, so the API's routes cannot be shadowed by them. The portal's
    # pages, the busiest, come before the other domains' (no route shadows another: tested).
    pages = sorted(domain_modules("pages"), key=lambda module: module.__name__ != PORTAL_PAGES)
    for module in pages:
        app.include_router(module.router)
    for module in domain_modules("api"):
        app.include_router(module.router, prefix="/api/v1")
    for module in domain_modules("startup"):
        module.install(app)
    _core_routes(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    # GOV.UK Frontend's compiled CSS refers to its fonts and images under /assets.
    app.mount("/assets", StaticFiles(directory=GOVUK_ASSETS, check_dir=False), name="assets")
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs the periodic tasks while the server is up (not under the test client's default)."""
    # Everything made while starting (modules, routes, templates: some 200,000 objects) lives
    # as long as the process. Left to the collector, each of its full passes walks them all,
    # pausing every request in flight for over 100 ms; frozen, a pass walks only what came since.
    gc.collect()
    gc.freeze()
    scheduler = None
    if app.state.settings.run_periodic_tasks:
        scheduler = Scheduler(app.state.sessionmaker)
        scheduler.start()
    try:
        yield
    finally:
        if scheduler is not None:
            scheduler.stop()


PORTAL_PAGES = "tagwatch.web.pages"


class RequestIdMiddleware:
    """Names each request (the caller's `X-Request-ID`, else a new one) in the log context,
    so log lines and audit entries carry it, and echoes it in the response.

    A plain ASGI middleware: Starlette's `BaseHTTPMiddleware` (`app.middleware("http")`) runs
    every request through a task and memory streams of its own.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = Headers(scope=scope).get("x-request-id")
        request_id = offered or uuid.uuid4().hex

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["x-request-id"] = request_id
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")


def _core_routes(app: FastAPI) -> None:
    @app.get("/", response_class=HTMLResponse, dependencies=[public()], include_in_schema=False)
    def start_page(request: Request) -> HTMLResponse:
        return templates().TemplateResponse(request, "start.html", {"title": "Start"})

    @app.get("/healthz", dependencies=[public()], include_in_schema=False)
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    # Metrics carry no personal data; in production expose them only to the scraper's network.
    @app.get("/metrics", dependencies=[public()], include_in_schema=False)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)
