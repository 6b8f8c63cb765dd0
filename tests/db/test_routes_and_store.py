"""The store's own guarantees: UTC datetimes, every route guarded, migrations match models."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import create_engine
from starlette.routing import compile_path

from tagwatch.access.permissions import route_permission
from tagwatch.db.base import UTCDateTime


def _dependency_calls(route: APIRoute) -> list[object]:
    calls: list[object] = []
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        calls.append(dep.call)
        stack.extend(dep.dependencies)
    return calls


def test_every_route_declares_exactly_one_permission(app: FastAPI) -> None:
    # Included routers are wrapped; iter_route_contexts walks into them.
    routes = [
        (context.path, context.methods, context.original_route)
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
    ]
    assert len(routes) > 50  # the domains' routers really were walked
    unguarded = [
        f"{sorted(methods)} {path}"
        for path, methods, route in routes
        if route_permission(_dependency_calls(route)) is None
    ]
    assert unguarded == []


def test_utc_datetime_refuses_naive_values() -> None:
    column_type = UTCDateTime()
    dialect = create_engine("sqlite://").dialect
    with pytest.raises(ValueError, match="naive"):
        column_type.process_bind_param(dt.datetime(2026, 1, 1), dialect)  # noqa: DTZ001
    aware = dt.datetime(2026, 6, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    stored = column_type.process_bind_param(aware, dialect)
    assert stored == dt.datetime(2026, 6, 1, 11)  # noqa: DTZ001
    assert column_type.process_result_value(stored, dialect) == aware


def _example_path(path: str) -> str:
    """The route's path with each parameter given a value of the kind it takes."""
    return re.sub(r"\{[^}:]+(:[^}]+)?\}", lambda m: "path/x" if m.group(1) else "123", path)


def test_no_route_shadows_another(app: FastAPI) -> None:
    # Routes are matched in order: a route is reachable only if no earlier one takes its paths.
    routes = [
        (context.path, context.original_route.methods, compile_path(context.path)[0])
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
    ]
    shadowed = []
    for index, (path, methods, _) in enumerate(routes):
        example = _example_path(path)
        for earlier, earlier_methods, pattern in routes[:index]:
            if earlier_methods & methods and pattern.fullmatch(example):
                shadowed.append(f"{path} by {earlier}")
    assert shadowed == []
