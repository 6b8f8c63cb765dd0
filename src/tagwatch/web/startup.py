"""Error pages for people using the portal: sign-in redirects and readable refusals.

API callers (and anything not asking for HTML) keep FastAPI's JSON errors. Outside development
compiled templates are kept without checking their files on every render.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from tagwatch.access.permissions import caller_unconfirmed, confirm_caller
from tagwatch.web.portal.render import render
from tagwatch.web.templating import templates

TITLES = {
    403: "You do not have access to this page",
    404: "Page not found",
}


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", ""
    )


async def _html_errors(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if not _wants_html(request):
        return await http_exception_handler(request, exc)
    if caller_unconfirmed(request):  # the page shows the caller: as their account is now
        await confirm_caller(request)
    if exc.status_code == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/sign-in?next={quote(target)}", status_code=303)
    if exc.status_code in TITLES:
        return render(
            request,
            "portal/error.html",
            {"title": TITLES[exc.status_code], "status": exc.status_code, "detail": exc.detail},
            status_code=exc.status_code,
        )
    return await http_exception_handler(request, exc)


def install(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _html_errors)
    templates().env.auto_reload = app.state.settings.environment == "development"
