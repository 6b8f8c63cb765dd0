"""Jinja2 environment: GOV.UK Frontend macros plus every domain's `templates/` folder."""

from __future__ import annotations

import json
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, PrefixLoader
from markupsafe import Markup

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
    env.globals["service_navigation"] = service_navigation
    return Jinja2Templates(env=env)


_SERVICE_NAVIGATION = (
    '{% from "govuk_frontend_jinja/components/service-navigation/macro.html"'
    " import govukServiceNavigation %}{{ govukServiceNavigation(params) }}"
)


def service_navigation(params: dict[str, Any]) -> Markup:
    """`govukServiceNavigation(params)`, written once for each distinct `params`. Every page
    has the header, and a signed-in user's is the same on every page of a section, while the
    macro costs more than many pages' own content."""
    return _service_navigation(json.dumps(params, sort_keys=True))


@lru_cache(maxsize=1024)
def _service_navigation(params_json: str) -> Markup:
    macro = templates().env.from_string(_SERVICE_NAVIGATION)
    return Markup(macro.render(params=json.loads(params_json)))
