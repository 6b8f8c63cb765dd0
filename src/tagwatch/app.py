"""The app factory: settings, store, middleware and every domain's routes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine

from tagwatch import __version__
from tagwatch.access.permissions import public
from tagwatch.background import Scheduler
from tagwatch.db.engine import make_engine, make_sessionmaker
from tagwatch.domains import domain_modules
from tagwatch.logging import configure_logging
from tagwatch.settings import Settings
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
    app.middleware("http")(_request_id)
    for module in domain_modules("api"):
        app.include_router(module.router, prefix="/api/v1")
    for module in domain_modules("pages"):
        app.include_router(module.router)
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
    scheduler = None
    if app.state.settings.run_periodic_tasks:
        scheduler = Scheduler(app.state.sessionmaker)
        scheduler.start()
    try:
        yield
    finally:
        if scheduler is not None:
            scheduler.stop()


async def _request_id(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        response = await call_next(request)
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    response.headers["x-request-id"] = request_id
    return response


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
