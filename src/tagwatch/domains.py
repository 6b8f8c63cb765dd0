"""The domain packages and how the app, CLI and store find their parts.

Each domain package may provide `models` (tables), `api` (a `router`), `pages` (a `router`)
and `commands` (a `register(app)` function for the CLI). Listing the packages once here keeps
the app factory, the CLI and the migrations in step without a central file to edit per feature.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator
from types import ModuleType

DOMAIN_PACKAGES: tuple[str, ...] = (
    "access",
    "cases",
    "telemetry",
    "compliance",
    "alerts",
    "crime",
    "requests",
    "reports",
    "analytics",
    "simulate",
    "web",
)


def domain_modules(part: str) -> Iterator[ModuleType]:
    """Import `tagwatch.<domain>.<part>` for every domain that has it, in domain order."""
    for package in DOMAIN_PACKAGES:
        name = f"tagwatch.{package}.{part}"
        if importlib.util.find_spec(name) is not None:
            yield importlib.import_module(name)
