"""Callers with chosen permissions for the reports tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tagwatch.access.principal import Principal


@pytest.fixture
def caller() -> Callable[..., Principal]:
    def build(permissions: set[str], **scope: object) -> Principal:
        return Principal(
            user_id=None,
            username=str(scope.pop("username", "analyst")),
            display_name="Test caller",
            roles=frozenset({"test"}),
            permissions=frozenset(permissions),
            **scope,  # type: ignore[arg-type]
        )

    return build
