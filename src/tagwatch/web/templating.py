"""Jinja2 environment: GOV.UK Frontend macros plus every domain's `templates/` folder."""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, PrefixLoader

from tagwatch.domains import DOMAIN_PACKAGES

PACKAGE_DIR = Path(__file__).resolve().parent.parent
STATIC_DIR = Path(__file__).resolve().parent / "static"
LONDON = ZoneInfo("Europe/London")
ASSET_PATH = "/assets"
GOVUK_ASSETS = STATIC_DIR / "vendor" / "govuk-frontend" / "assets"


def london_time(value: dt.datetime | None, fmt: str = "%-d %b %Y %H:%M") -> str:
    """Times are stored in UTC and shown in Europe/London."""
    if value is None:
        return ""
    return value.astimezone(LONDON).strftime(fmt)


@cache
def templates() -> Jinja2Templates:
    folders = [PACKAGE_DIR / name / "templates" for name in DOMAIN_PACKAGES]
    loader = ChoiceLoader(
        [
            FileSystemLoader([str(f) for f in folders if f.is_dir()]),
            PrefixLoader({"govuk_frontend_jinja": PackageLoader("govuk_frontend_jinja")}),
        ]
    )
    env = Environment(loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters["london_time"] = london_time
    env.globals["assetPath"] = ASSET_PATH
    return Jinja2Templates(env=env)
