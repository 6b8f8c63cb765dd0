"""Callers with chosen permissions for the reports tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import browser_harness
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


# --- the browser harness of tests/web, on a server and schema of its own ----------------------

_harness = browser_harness.install(globals(), "tw_reports_browser")


@pytest.fixture(scope="session")
def password_of() -> Callable[[str], str]:
    """The password the harness gives a user it (or a test) creates."""
    return _harness.password_of  # type: ignore[no-any-return]
