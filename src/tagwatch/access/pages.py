"""Sign-in, sign-out, the account page and the audit log search page."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tagwatch.access import oidc, service, user_pages
from tagwatch.access.audit import record
from tagwatch.access.audit_search import audited_search
from tagwatch.access.permissions import PERMISSIONS, public, require
from tagwatch.access.principal import Principal
from tagwatch.access.repository import AuditQuery
from tagwatch.access.sessions import request_session
from tagwatch.db.deps import DbSession
from tagwatch.london import LONDON
from tagwatch.settings import Settings
from tagwatch.web.templating import templates

router = APIRouter(include_in_schema=False)
router.include_router(user_pages.router)
PAGE_SIZE = 50


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _safe_next(target: str | None) -> str:
    """Only paths on this site, so the sign-in form cannot be used to redirect elsewhere."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/account"


def _render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    return templates().TemplateResponse(request, name, context, status_code=status_code)


def _sign_in_form(
    request: Request, *, error: str | None = None, username: str = "", next_path: str = ""
) -> Response:
    return _render(
        request,
        "access/sign_in.html",
        {
            "title": "Sign in",
            "error": error,
            "username": username,
            "next_path": next_path,
            "oidc_enabled": oidc.enabled(_settings(request)),
        },
        status_code=400 if error else 200,
    )


@router.get("/sign-in", response_class=HTMLResponse, dependencies=[public()])
def sign_in_page(request: Request, next: str = "") -> Response:
    return _sign_in_form(request, next_path=next)


@router.post("/sign-in", response_class=HTMLResponse, dependencies=[public()])
def sign_in(
    request: Request,
    session: DbSession,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    browser_session = request_session(request)
    # Checked here, not in the middleware: nobody is signed in yet (login CSRF).
    if not browser_session.csrf_matches(csrf_token):
        return _sign_in_form(
            request, error="The form has expired; try again", username=username, next_path=next
        )
    if not username or not password:
        return _sign_in_form(
            request, error="Enter your username and password", username=username, next_path=next
        )
    settings = _settings(request)
    try:
        user = service.authenticate(
            session,
            username,
            password,
            lockout_threshold=settings.lockout_threshold,
            lockout=dt.timedelta(minutes=settings.lockout_minutes),
        )
    except service.SignInRefused as refused:
        record(session, None, "sign_in.refused", subject_type="user", detail={"username": username})
        return _sign_in_form(request, error=str(refused), username=username, next_path=next)
    browser_session.start(user.id)
    record(session, service.principal_for(user), "sign_in", subject_type="user", subject_id=user.id)
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/sign-out", dependencies=[public()])
def sign_out(request: Request) -> Response:
    request_session(request).clear()
    return RedirectResponse("/", status_code=303)


@router.get("/sign-in/oidc", dependencies=[public()])
def oidc_start(request: Request) -> Response:
    settings = _settings(request)
    if not oidc.enabled(settings):
        return _sign_in_form(request, error="Sign-in with an organisation account is not set up")
    try:
        target = oidc.start(
            settings, request_session(request), str(request.url_for("oidc_callback"))
        )
    except oidc.OidcError as error:
        return _sign_in_form(request, error=str(error))
    return RedirectResponse(target, status_code=303)


@router.get("/sign-in/oidc/callback", name="oidc_callback", dependencies=[public()])
def oidc_callback(request: Request, session: DbSession) -> Response:
    browser_session = request_session(request)
    try:
        identity = oidc.complete(
            _settings(request),
            browser_session,
            str(request.url_for("oidc_callback")),
            dict(request.query_params),
        )
        user = service.upsert_identity_user(
            session,
            username=identity.username,
            display_name=identity.display_name,
            email=identity.email,
            roles=identity.roles,
        )
    except (oidc.OidcError, service.SignInRefused) as error:
        return _sign_in_form(request, error=str(error))
    session.flush()
    browser_session.start(user.id)
    record(
        session,
        service.principal_for(user),
        "sign_in",
        subject_type="user",
        subject_id=user.id,
        detail={"via": "oidc", "groups": identity.groups},
    )
    return RedirectResponse("/account", status_code=303)


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, principal: Annotated[Principal | None, public()]) -> Response:
    if principal is None:
        return RedirectResponse("/sign-in?next=/account", status_code=303)
    return _render(
        request,
        "access/account.html",
        {
            "title": "Your account",
            "principal": principal,
            "permissions": [(p, PERMISSIONS[p]) for p in sorted(principal.permissions)],
        },
    )


def _london_day_start(value: str, field: str, days_after: int = 0) -> dt.datetime | None:
    """Midnight in London at the start of the given day (plus `days_after`), in UTC."""
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError as error:
        raise ValueError(f"{field}: enter a date like 2026-03-31") from error
    day += dt.timedelta(days=days_after)
    return dt.datetime.combine(day, dt.time(), tzinfo=LONDON).astimezone(dt.UTC)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    session: DbSession,
    principal: Annotated[Principal, require("audit:read")],
    username: str = "",
    action: str = "",
    subject_type: str = "",
    subject_id: str = "",
    date_from: str = "",
    date_to: str = "",
    page: int = 1,
) -> Response:
    form = {
        "username": username,
        "action": action,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "date_from": date_from,
        "date_to": date_to,
    }
    context: dict[str, Any] = {"title": "Audit log", "form": form, "error": None}
    searched = any(form.values())
    try:
        query = AuditQuery(
            username=username or None,
            action=action or None,
            subject_type=subject_type or None,
            subject_id=subject_id or None,
            since=_london_day_start(date_from, "date_from"),
            until=_london_day_start(date_to, "date_to", days_after=1),
            limit=PAGE_SIZE,
            offset=(max(page, 1) - 1) * PAGE_SIZE,
        )
        if searched:
            total, entries = audited_search(session, principal, query)
            more = total > query.offset + len(entries)
            context.update(
                total=total,
                entries=entries,
                next_page_url=request.url.include_query_params(page=max(page, 1) + 1)
                if more
                else None,
            )
    except ValueError as error:
        context["error"] = str(error)
    return _render(
        request, "access/audit.html", context, status_code=400 if context["error"] else 200
    )
