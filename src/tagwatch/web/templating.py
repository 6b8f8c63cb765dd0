"""Jinja2 environment: GOV.UK Frontend macros plus every domain's `templates/` folder."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, PrefixLoader

from tagwatch.domains import DOMAIN_PACKAGES
from tagwatch.london import london_time
from tagwatch.web import markup

PACKAGE_DIR = Path(__file__).resolve().parent.parent
STATIC_DIR = Path(__file__).resolve().parent / "static"
ASSET_PATH = "/assets"
GOVUK_ASSETS = STATIC_DIR / "vendor" / "govuk-frontend" / "assets"


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
    markup.install(env.globals)
    return Jinja2Templates(env=env)
