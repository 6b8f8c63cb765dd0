"""Every route names its permission, and every role is let in exactly where roles.py says.

The expected table is built from roles.py (route -> permission -> roles holding it); the
actual one by calling every route as a real signed-in user of each role, through the real
middleware and guards (no override of get_principal). Path parameters get dummy values and
bodies are empty: "allowed" means the guard let the caller through, whatever came next.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from access_helpers import CSRF
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from tagwatch.access.models import User
from tagwatch.access.permissions import PERMISSIONS, route_permission
from tagwatch.access.roles import ROLES, permission_matrix_markdown, roles_holding
from tagwatch.access.sessions import COOKIE_NAME

PATH_PARAMETER = re.compile(r"{([^}:]+)(:[^}]+)?}")


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    permission: str | None

    def url(self) -> str:
        return PATH_PARAMETER.sub("1", self.path)


def _dependency_calls(route: APIRoute) -> list[object]:
    calls: list[object] = []
    stack = list(route.dependant.dependencies)
    while stack:
        dependency = stack.pop()
        calls.append(dependency.call)
        stack.extend(dependency.dependencies)
    return calls


def endpoints(app: FastAPI) -> Iterator[Endpoint]:
    """Every API and page route, including those in included routers, one per method."""
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute):
            continue
        permission = route_permission(_dependency_calls(context.original_route))
        for method in sorted(context.methods or ()):
            if method != "HEAD":
                yield Endpoint(method, str(context.path), permission)


def test_every_route_declares_exactly_one_known_permission(app: FastAPI) -> None:
    found = list(endpoints(app))
    assert len(found) > 10, "the walk found the routers' routes"
    unguarded = [f"{e.method} {e.path}" for e in found if e.permission is None]
    assert unguarded == []
    unknown = [e for e in found if e.permission not in {*PERMISSIONS, "public"}]
    assert unknown == []


@dataclass(frozen=True)
class Outcome:
    status: int
    guard_refused: bool


def _call(browser: TestClient, endpoint: Endpoint, cookie: str | None) -> Outcome:
    """Only the status is awaited, so endless responses (event streams) do not hold the test."""
    browser.cookies.clear()
    headers = {"X-CSRF-Token": CSRF, "Accept": "application/json"}
    if cookie:
        headers["Cookie"] = f"{COOKIE_NAME}={cookie}"
    with browser.stream(endpoint.method, endpoint.url(), headers=headers) as response:
        status = response.status_code
        # 401, or a 403 from the permission guard (not a handler's own out-of-scope answer).
        refused = status == 401 or (status == 403 and b"Needs permission" in response.read())
    return Outcome(status, refused)


@pytest.mark.slow
def test_each_role_reaches_exactly_the_routes_its_permissions_open(
    app: FastAPI, make_user: Callable[..., User], session_cookie: Callable[[int], str]
) -> None:
    cookies = {role: session_cookie(make_user(role, password=None).id) for role in ROLES}
    mismatches = []
    # One client for all calls: it keeps one event loop instead of starting one per request.
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as browser:
        for endpoint in endpoints(app):
            if endpoint.path == "/sign-out":
                continue  # would end the session the next call relies on; covered elsewhere
            holders = (
                set(ROLES)
                if endpoint.permission == "public"
                else roles_holding(endpoint.permission)
            )
            for role, cookie in cookies.items():
                refused = _call(browser, endpoint, cookie).guard_refused
                if refused == (role in holders):
                    mismatches.append(
                        f"{endpoint.method} {endpoint.path} ({endpoint.permission}) as {role}: "
                        f"{'refused' if refused else 'allowed'}"
                    )
    assert mismatches == []


def test_anonymous_callers_reach_only_public_routes(app: FastAPI) -> None:
    wrong = []
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as browser:
        for endpoint in endpoints(app):
            outcome = _call(browser, endpoint, None)
            if endpoint.permission != "public" and outcome.status != 401:
                wrong.append(f"{endpoint.method} {endpoint.path}: {outcome.status}")
    assert wrong == []


def test_least_privilege_promises_hold() -> None:
    assert ROLES["police_officer"] == {"crime:read", "request:create", "request:read"}
    assert "person:read" not in ROLES["analyst"] and "pseudonymised:read" in ROLES["analyst"]
    assert "location:read" not in ROLES["administrator"]
    assert "location:read" not in ROLES["monitoring_centre_operator"]
    assert roles_holding("restricted:read") == {"restricted_cases"}
    assert roles_holding("audit:read") == {"administrator"}


def test_docs_show_the_matrix_generated_from_roles(repo_root) -> None:  # type: ignore[no-untyped-def]
    docs = (repo_root / "docs" / "access.md").read_text(encoding="utf-8")
    assert permission_matrix_markdown() in docs, (
        "docs/access.md is out of date: paste roles.permission_matrix_markdown() into it"
    )
