"""Domain events: how an upstream domain tells downstream ones, without knowing them.

Data flows one way (cases -> telemetry -> compliance -> alerts). A domain defines its event
dataclasses in `<domain>/events.py` and calls `publish(session, event)`; a downstream domain
lists handlers in `<domain>/handlers.py` as `HANDLERS = {EventType: [handler, ...]}`.
Handlers run at once, in the publisher's transaction, so what they write commits (or rolls
back) with the change that caused it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from functools import cache
from typing import Any

from sqlalchemy.orm import Session

from tagwatch.domains import domain_modules

Handler = Callable[[Session, Any], None]


@cache
def _handlers() -> dict[type, tuple[Handler, ...]]:
    merged: dict[type, list[Handler]] = defaultdict(list)
    for module in domain_modules("handlers"):
        for event_type, handlers in module.HANDLERS.items():
            merged[event_type].extend(handlers)
    return {event_type: tuple(handlers) for event_type, handlers in merged.items()}


def publish(session: Session, event: object) -> None:
    for handler in _handlers().get(type(event), ()):
        handler(session, event)
