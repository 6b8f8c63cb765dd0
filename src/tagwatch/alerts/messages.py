"""Notification text rendered from templates: the first line is the subject, the rest the body."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from tagwatch.alerts.models import Alert
from tagwatch.alerts.sources import AWAITING_FITTING
from tagwatch.compliance.rules import RULES
from tagwatch.london import london_time

TEMPLATE_DIR = Path(__file__).with_name("message_templates")
FITTING_TITLE = "Not fitted by the deadline"


@cache
def _environment() -> Environment:
    # Plain text: nothing to escape, and a missing field must fail loudly, not print blank.
    # The templates ship with the code, so they are not checked for changes on every use.
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        auto_reload=False,
        autoescape=False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["london_time"] = london_time
    return env


def title(violation_type: str) -> str:
    """A violation's rule title, as compliance names it."""
    if violation_type == AWAITING_FITTING:
        return FITTING_TITLE
    rule = RULES.get(violation_type)
    return rule.title if rule else violation_type


def render(purpose: str, alert: Alert | Mapping[str, Any]) -> tuple[str, str]:
    """(subject, body) for a notification about `alert`, for `purpose` (raised, escalated).

    `alert` may be the fields of one about to be written, with its id (templates read both).
    """
    violation_type = alert["violation_type"] if isinstance(alert, Mapping) else alert.violation_type
    text = (
        _environment()
        .get_template(f"{purpose}.txt")
        .render(alert=alert, title=title(violation_type))
    )
    subject, _, body = text.partition("\n")
    return subject.strip(), body.strip() + "\n"


def structured(alert: Alert) -> dict[str, Any]:
    """The alert's fields for channels that carry data (webhook, Notify personalisation)."""
    return {
        "alert_id": alert.id,
        "kind": alert.kind,
        "violation_id": alert.violation_id,
        "order_id": alert.order_id,
        "violation_type": alert.violation_type,
        "severity": alert.severity,
        "status": alert.status,
        "responsible_officer": alert.responsible_officer,
        "delivery_unit_code": alert.delivery_unit_code,
        "event_at": alert.event_at.isoformat(),
        "raised_at": alert.raised_at.isoformat(),
        "outcome_due_at": alert.outcome_due_at.isoformat(),
        "needs_tamper_review": alert.needs_tamper_review,
    }
