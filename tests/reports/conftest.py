"""Callers with chosen permissions for the reports tests."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

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


# --- the browser harness of tests/web (live server, Chromium, axe), on a schema of its own -----


def _browser_harness() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "web" / "conftest.py"
    spec = importlib.util.spec_from_file_location("reports_browser_harness", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    # A PostgreSQL run gives the report pages their own schema, apart from the portal's.
    vars(module)["BROWSER_SCHEMA"] = "tw_reports_browser"
    return module


_harness = _browser_harness()
server_engine = _harness.server_engine
server_sessions = _harness.server_sessions
server_settings = _harness.server_settings
live_server = _harness.live_server
seeded = _harness.seeded
page = _harness.page
sign_in = _harness.sign_in
assert_accessible = _harness.assert_accessible


@pytest.fixture(scope="session")
def password_of() -> Callable[[str], str]:
    """The password the harness gives a user it (or a test) creates."""
    return _harness.password_of  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Chromium for this directory's pages, closed when their module ends: only one sync
    Playwright may run in a thread at a time, and tests/web starts its own later."""
    if not _harness.CHROMIUM.exists():
        pytest.skip(f"{_harness.CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(_harness.CHROMIUM), args=_harness.CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()
