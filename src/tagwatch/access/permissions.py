"""Permissions, named `resource:action`, and the route guards that enforce them.

Every route depends on exactly one guard: `require(permission)` or `public()`. A test walks
the app's routes and fails when one has neither, so nothing is reachable by accident.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Depends, HTTPException, Request, status
from starlette.concurrency import run_in_threadpool

from tagwatch.access.principal import Principal

F = TypeVar("F", bound=Callable[..., Any])

PERMISSIONS: dict[str, str] = {
    "person:read": "See a person's record in scope",
    "person:write": "Create and change people",
    "person:search": "Search people by name or identifier",
    "order:read": "See orders, conditions and their history",
    "order:write": "Create, vary and move orders through their lifecycle",
    "order:import": "Import orders from a file",
    "order:export": "Export orders to a file",
    "device:read": "See devices and allocations",
    "device:write": "Record devices, fittings and removals",
    "refdata:read": "See reference data",
    "refdata:write": "Maintain reference data",
    "location:read": "See trails, maps and positions of people in scope",
    "location:export": "Export trails",
    "telemetry:ingest": "Send device records (device gateways)",
    "telemetry:quarantine": "List and replay quarantined records",
    "compliance:read": "See violations and compliance summaries",
    "compliance:write": "Record authorised absences and zone suspensions",
    "alert:read": "See alerts",
    "alert:acknowledge": "Acknowledge alerts",
    "alert:outcome": "Record enforcement outcomes",
    "alert:review_tamper": "Review tamper alerts before enforcement",
    "alert:report": "See overdue and escalated alert reports",
    "crime:upload": "Upload crime batches",
    "crime:read": "See crime batches and matches in scope",
    "crime:match": "Run the crime matcher",
    "crime:review": "Qualify or dismiss matches",
    "crime:authorise": "Authorise qualified matches and evidence packs",
    "crime:evidence": "Download evidence packs",
    "request:create": "Ask for a person's location data",
    "request:approve": "Approve or refuse location data requests",
    "request:read": "See location data requests and approved results",
    "report:read": "See statistics and service performance",
    "report:publish": "Produce published (suppressed) statistics",
    "dq:read": "See data quality scores",
    "dictionary:read": "See the data dictionary",
    "audit:read": "Search the audit log",
    "user:admin": "Manage users, roles and API tokens",
    "retention:admin": "Manage retention",
    "restricted:read": "See restricted (high-profile) cases",
    "pseudonymised:read": "See pseudonymised data only",
    "immigration:read": "See immigration bail cases and reviews",
    "immigration:write": "Record immigration bail reviews",
}


SIGN_IN_FIRST = "Sign in to continue"
# The endpoint attribute set by `confirms_caller_in_its_reads`.
_CONFIRMS_CALLER = "confirms_caller_in_its_reads"


def needs_permission(permission: str) -> str:
    return f"Needs permission {permission}"


# The guards are coroutines: they only look at the request, and a plain function would be
# sent to the thread pool and back on every request.
async def get_principal(request: Request) -> Principal | None:
    """The authenticated caller, set on the request by the authentication middleware.

    A signed-in caller seen before may come unconfirmed (`caller_unconfirmed`): then the
    account is read now, unless the route confirms it in its own read transaction.
    """
    if caller_unconfirmed(request) and not getattr(
        request.scope.get("endpoint"), _CONFIRMS_CALLER, False
    ):
        await confirm_caller(request)
    return caller_of(request)


def caller_of(request: Request) -> Principal | None:
    """`get_principal` for code that is not a dependency."""
    return getattr(request.state, "principal", None)


def caller_unconfirmed(request: Request) -> bool:
    return bool(getattr(request.state, "caller_unconfirmed", False))


async def confirm_caller(request: Request) -> Principal | None:
    """Read the signed-in caller's account now, in a read-only transaction of its own."""
    # Imported here: the middleware, which resolves callers, imports this module.
    from tagwatch.access.middleware import confirm_caller_now

    return await run_in_threadpool(confirm_caller_now, request)


def confirms_caller_in_its_reads(endpoint: F) -> F:
    """Marks a page whose reads begin by confirming its caller against their account, in the
    same transaction (`tagwatch.web.portal.render.read_page`): its guard may admit a caller
    seen before on trust, since nothing is read or shown before that confirmation."""
    setattr(endpoint, _CONFIRMS_CALLER, True)
    return endpoint


def require(permission: str) -> Any:
    """A route dependency that admits only callers holding `permission`."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    async def guard(
        request: Request, principal: Principal | None = Depends(get_principal)
    ) -> Principal:
        if (principal is None or not principal.has(permission)) and caller_unconfirmed(request):
            principal = await confirm_caller(request)  # refuse only on the account as it is
        if principal is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, SIGN_IN_FIRST)
        if not principal.has(permission):
            raise HTTPException(status.HTTP_403_FORBIDDEN, needs_permission(permission))
        # What the route's confirmation of an unconfirmed caller checks them for.
        request.state.required_permission = permission
        return principal

    guard.permission = permission  # type: ignore[attr-defined]
    return Depends(guard)


def public() -> Any:
    """A route dependency that marks a route as deliberately open to everyone."""

    async def open_route(principal: Principal | None = Depends(get_principal)) -> Principal | None:
        return principal

    open_route.permission = "public"  # type: ignore[attr-defined]
    return Depends(open_route)


def route_permission(dependant_calls: list[Callable[..., Any]]) -> str | None:
    """The permission a route declares, from its dependency callables (used by the tests)."""
    found = [getattr(call, "permission", None) for call in dependant_calls]
    named = [p for p in found if p]
    return named[0] if len(named) == 1 else None
