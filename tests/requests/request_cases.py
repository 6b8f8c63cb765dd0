"""Names the data request tests share (a module of its own: `conftest` is not importable by name
when several test folders are collected together)."""

from __future__ import annotations

import datetime as dt

from tagwatch.access.permissions import PERMISSIONS
from tagwatch.access.principal import Principal

T0 = dt.datetime(2026, 11, 2, tzinfo=dt.UTC)

POLICE = frozenset({"crime:read", "request:create", "request:read"})
APPROVER = frozenset({"request:read", "request:approve", "report:read"})


def caller(
    username: str, permissions: frozenset[str] = frozenset(PERMISSIONS), **scope: object
) -> Principal:
    return Principal(
        user_id=None,
        username=username,
        display_name=username.title(),
        roles=frozenset({"test"}),
        permissions=permissions,
        **scope,  # type: ignore[arg-type]
    )
