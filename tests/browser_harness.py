"""The browser harness of tests/web (live server, Chromium, axe) for another test folder.

A folder's conftest calls `install(globals(), "<schema>")`: it gets the harness's fixtures on a
server of its own (its own PostgreSQL schema in a PostgreSQL run); Chromium is per test module,
so folders may run in any order.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

EXPORTED = (
    "server_engine",
    "server_sessions",
    "server_settings",
    "live_server",
    "seeded",
    "page",
    "sign_in",
    "assert_accessible",
    "chromium",
)


def install(namespace: dict[str, Any], schema: str) -> Any:
    """Define the harness's fixtures in a conftest's namespace; returns the harness module."""
    path = Path(__file__).resolve().parent / "web" / "conftest.py"
    spec = importlib.util.spec_from_file_location(f"browser_harness_{schema}", path)
    assert spec is not None and spec.loader is not None
    harness = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = harness  # its dataclasses look their module up by name
    spec.loader.exec_module(harness)
    vars(harness)["BROWSER_SCHEMA"] = schema
    for name in EXPORTED:
        namespace[name] = getattr(harness, name)

    return harness
