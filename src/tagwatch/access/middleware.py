"""Who is calling, CSRF on forms, and the security headers every response carries.

Callers are resolved once per request into `request.state.principal` (read only through
`permissions.get_principal`): a `Authorization: Bearer` API token first, else the signed
session cookie. Unsafe requests (POST, PUT, PATCH, DELETE) that ride on a session cookie must
carry the session's CSRF token, as the `csrf_token` form field (`{{ csrf_input() }}` in a
template) or the `X-CSRF-Token` header. Bearer-token calls are exempt: a browser never adds
that header by itself. Requests with no valid session have no ambient authority to abuse, so
they are not checked here (the sign-in form checks its own token).
"""

from __future__ import annotations

import inspect
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response, status
from fastapi.responses import PlainTextResponse
from jinja2 import pass_context
from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tagwatch.access.permissions import (
    SIGN_IN_FIRST,
    caller_of,
    caller_unconfirmed,
    get_principal,
    needs_permission,
)
from tagwatch.access.principal import Principal
from tagwatch.access.service import caller_account, principal_for_account, principal_for_token
from tagwatch.access.sessions import (
    COOKIE_NAME,
    CSRF_FIELD,
    CSRF_HEADER,
    RequestSession,
    csrf_input,
    load,
    write_cookie,
)
from tagwatch.db.engine import read_only, unit_of_work
from tagwatch.settings import Settings
from tagwatch.web.templating import templates

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# FastAPI's interactive API docs are a third-party page with its own inline script.
API_DOCS_PATH = "/api/docs"


def install(app: FastAPI) -> None:
    refuse_development_secrets(app.state.settings)
    app.add_middleware(AccessMiddleware)
    _install_template_helpers()


def refuse_development_secrets(settings: Settings) -> None:
    """Production must not sign sessions or key pseudonyms with the published defaults."""
    if settings.environment != "production":
        return
    defaults = Settings.model_fields
    for name in ("secret_key", "pseudonym_key"):
        if getattr(settings, name) == defaults[name].default:
            raise ValueError(f"{name}: set TAGWATCH_{name.upper()} to a secret value in production")


class AccessMiddleware:
    """A plain ASGI middleware: Starlette's `BaseHTTPMiddleware` runs every request through a
    task and memory streams of its own, which cost as much as the rest of this work."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        settings: Settings = request.app.state.settings
        request.state.csp_nonce = secrets.token_urlsafe(16)
        bearer = _bearer(request)
        session = RequestSession(load(settings, request.cookies.get(COOKIE_NAME)))
        request.state.session = session
        known = _known_caller(request.method, bearer, session)
        if known is not None:
            # Taken on trust until confirmed against the account, before anything is read or
            # shown: by the route's own read transaction, or else by its guard.
            request.state.principal = known.principal
            request.state.caller_unconfirmed = True
        else:
            request.state.principal = await run_in_threadpool(
                _resolve_principal, request.app, bearer, session
            )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                _write_cookie(headers, settings, session)
                _secure_headers(headers, request, settings)
            await send(message)

        if request.method in UNSAFE_METHODS and bearer is None and session.get("uid") is not None:
            # The token may be in the body: read it once, then give it to the check and the
            # route each from the start.
            body = await _body(receive)
            offered = await _offered_csrf_token(Request(scope, _replay(body, receive)))
            if not session.csrf_matches(offered):
                refusal = PlainTextResponse(
                    "The form has expired or did not come from this service. Go back, reload "
                    "the page and try again.",
                    status_code=403,
                )
                await refusal(scope, receive, send_with_headers)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send_with_headers)


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the whole body once, then waits on the client as usual."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _write_cookie(headers: MutableHeaders, settings: Settings, session: RequestSession) -> None:
    if not session.changed:  # most requests: nothing to write
        return
    # `write_cookie` speaks to a Response; its Set-Cookie header is carried over from one.
    carrier = Response()
    write_cookie(carrier, settings, session)
    for name, value in carrier.raw_headers:
        if name == b"set-cookie":
            headers.append("set-cookie", value.decode("latin-1"))


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _resolve_principal(
    app: FastAPI, bearer: str | None, session: RequestSession
) -> Principal | None:
    if bearer is None and session.get("uid") is None:
        return None
    if bearer is not None:
        with unit_of_work(app.state.sessionmaker) as db:  # notes when the token was last used
            return principal_for_token(db, bearer)
    # A pure read: the caller is resolved without queueing behind any writer.
    with read_only(app.state.sessionmaker) as db:
        return signed_in_caller(db, int(session.get("uid")), session)


@dataclass(frozen=True)
class _KnownCaller:
    account: tuple[Any, ...]
    principal: Principal


# Signed-in callers this process has seen, by user id, with the account they were made from.
# Never used unconfirmed: each request's caller is checked against the account as it is then.
_KNOWN_CALLERS: dict[int, _KnownCaller] = {}
_KNOWN_CALLERS_KEPT = 10_000
SAFE_METHODS = frozenset({"GET", "HEAD"})


def _known_caller(method: str, bearer: str | None, session: RequestSession) -> _KnownCaller | None:
    """A session's caller seen before, for a request that changes nothing (others are always
    resolved up front, as are bearer tokens, whose use is recorded)."""
    uid = session.get("uid")
    if bearer is not None or uid is None or method not in SAFE_METHODS:
        return None
    return _KNOWN_CALLERS.get(int(uid))


def signed_in_caller(db: Session, user_id: int, session: RequestSession) -> Principal | None:
    """The caller behind a session's user id, read in `db`'s transaction; None (and the session
    ended) if the account is gone or deactivated. Noted for the process's next requests."""
    account = caller_account(db, user_id)
    known = _KNOWN_CALLERS.get(user_id)
    if known is not None and known.account == account:
        return known.principal
    if account is None or (principal := principal_for_account(account)) is None:
        _KNOWN_CALLERS.pop(user_id, None)
        session.clear()
        return None
    if len(_KNOWN_CALLERS) >= _KNOWN_CALLERS_KEPT:
        _KNOWN_CALLERS.clear()
    _KNOWN_CALLERS[user_id] = _KnownCaller(account, principal)
    return principal


def confirm_caller_now(request: Request) -> Principal | None:
    """Confirm an unconfirmed caller in a read-only transaction of its own (see
    `permissions.get_principal`)."""
    with read_only(request.app.state.sessionmaker) as db:
        return _confirm(request, db)


def _confirm(request: Request, db: Session) -> Principal | None:
    request.state.caller_unconfirmed = False
    session: RequestSession = request.state.session
    principal = signed_in_caller(db, int(session.get("uid")), session)
    request.state.principal = principal
    return principal


def confirmed_caller(request: Request, db: Session, principal: Principal) -> Principal:
    """The caller a guard admitted, confirmed in `db`'s transaction if it was taken on trust:
    refused (401, 403) if the account no longer allows the route, else as it is now."""
    if not caller_unconfirmed(request):
        return principal
    trusted = request.state.principal
    current = _confirm(request, db)
    if current is trusted:
        return principal
    if current is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, SIGN_IN_FIRST)
    permission: str = request.state.required_permission
    if not current.has(permission):
        raise HTTPException(status.HTTP_403_FORBIDDEN, needs_permission(permission))
    return current


async def _offered_csrf_token(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.headers.get("content-type", "").startswith(FORM_TYPES):
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


def content_security_policy(nonce: str, settings: Settings) -> str:
    img_sources = ["'self'", "data:"]
    if settings.tile_url:
        img_sources.append(_origin(settings.tile_url))
    directives = {
        "default-src": "'self'",
        "script-src": f"'self' 'nonce-{nonce}'",
        # Map libraries set element sizes through style attributes; styles cannot run code.
        "style-src": "'self' 'unsafe-inline'",
        "img-src": " ".join(img_sources),
        "font-src": "'self'",
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


API_DOCS_POLICY = (
    "default-src 'self' https:; script-src 'self' 'unsafe-inline' https:; "
    "style-src 'self' 'unsafe-inline' https:; img-src 'self' data: https:; "
    "frame-ancestors 'none'"
)


def _secure_headers(headers: MutableHeaders, request: Request, settings: Settings) -> None:
    if request.url.path == API_DOCS_PATH:
        headers["content-security-policy"] = API_DOCS_POLICY
    else:
        headers["content-security-policy"] = content_security_policy(
            request.state.csp_nonce, settings
        )
    headers["x-content-type-options"] = "nosniff"
    headers["x-frame-options"] = "DENY"
    headers["referrer-policy"] = "same-origin"
    headers["cross-origin-opener-policy"] = "same-origin"
    headers["permissions-policy"] = "geolocation=(), camera=(), microphone=(), payment=()"
    if settings.environment == "production":
        headers["strict-transport-security"] = "max-age=31536000; includeSubDomains"
    if request.state.principal is not None and "cache-control" not in headers:
        # Pages and API answers for a signed-in caller may hold personal data.
        headers["cache-control"] = "no-store"


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].replace("{s}", "*")
    return f"{scheme}://{host}" if host else "'self'"


def current_principal(request: Request) -> Principal | None:
    """The caller as route guards see it, honouring a dependency override (the test clients)."""
    override = request.app.dependency_overrides.get(get_principal)
    if override is None:
        return caller_of(request)
    caller: Principal | None = (
        override(request) if inspect.signature(override).parameters else override()
    )
    return caller


def _template_context(request: Request) -> dict[str, Any]:
    return {
        "cspNonce": getattr(request.state, "csp_nonce", None),
        "current_principal": current_principal(request),
    }


@pass_context
def _csrf_input_global(context: Any) -> Markup:
    return csrf_input(context["request"])


def _install_template_helpers() -> None:
    """`cspNonce` for GOV.UK Frontend's inline script, and `csrf_input()` for forms."""
    jinja = templates()
    if _template_context not in jinja.context_processors:
        jinja.context_processors.append(_template_context)
    jinja.env.globals["csrf_input"] = _csrf_input_global
