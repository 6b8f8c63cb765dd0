"""Rendering a portal page: the template, the caller, and the map settings every map needs."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from tagwatch.web.templating import templates


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    settings = request.app.state.settings
    full = {
        "tile_url": settings.tile_url,
        "tile_attribution": settings.tile_attribution,
        **context,
    }
    return templates().TemplateResponse(request, template, full, status_code=status_code)


def json_script(element_id: str, data: Any) -> Markup:
    """Data for a page's script as a JSON block (not executed, so the CSP allows it)."""
    payload = json.dumps(data, separators=(",", ":"), default=str)
    # `</` inside a script element would end it early.
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(f'<script type="application/json" id="{element_id}">{payload}</script>')
