"""Order versions: every change is a new version saying who, when, why and what changed."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from tagwatch.cases.documents import order_document
from tagwatch.cases.events import OrderChanged
from tagwatch.cases.models import Order, OrderVersion
from tagwatch.db.base import utcnow
from tagwatch.events import publish

_LIST_KEYS = {"conditions": "condition", "allocations": "allocation"}


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, dict | list):
        return "changed"
    return str(value)


def _describe_item(kind: str, index: int, item: dict[str, Any]) -> str:
    if kind == "allocation":
        return f"allocation {index + 1} (device {item.get('device')})"
    return f"condition {index + 1} ({item.get('type')})"


def describe_changes(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Readable lines saying how `new` differs from `old` (both order documents)."""
    if not old:
        return ["order created"]
    lines: list[str] = []
    for key, value in new.items():
        if key in ("history",) or old.get(key) == value:
            continue
        if key in _LIST_KEYS:
            lines.extend(_describe_list(_LIST_KEYS[key], old.get(key) or [], value or []))
        elif isinstance(value, dict):
            for sub, sub_value in value.items():
                before = (old.get(key) or {}).get(sub)
                if before != sub_value:
                    lines.append(f"{key} {sub}: {_show(before)} -> {_show(sub_value)}")
        else:
            lines.append(f"{key}: {_show(old.get(key))} -> {_show(value)}")
    return lines


def _describe_list(kind: str, old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for index in range(max(len(old), len(new))):
        before = old[index] if index < len(old) else None
        after = new[index] if index < len(new) else None
        if before == after:
            continue
        if before is None and after is not None:
            lines.append(f"{_describe_item(kind, index, after)} added")
        elif after is None and before is not None:
            lines.append(f"{_describe_item(kind, index, before)} removed")
        elif before is not None and after is not None:
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            parts = [f"{k}: {_show(before.get(k))} -> {_show(after.get(k))}" for k in changed]
            lines.append(f"{_describe_item(kind, index, after)} {'; '.join(parts)}")
    return lines


def next_version(
    order: Order, *, by: str, reason: str, at: dt.datetime | None = None
) -> OrderVersion | None:
    """Append the order's next version unless nothing differs from the last one (no flush)."""
    snapshot = order_document(order, history=False)
    previous = order.versions[-1] if order.versions else None
    changes = describe_changes(previous.snapshot if previous else None, snapshot)
    if previous is not None and not changes:
        return None
    now = at or utcnow()
    number = (previous.version if previous else 0) + 1
    version = OrderVersion(
        version=number, at=now, by=by, reason=reason, changes=changes, snapshot=snapshot
    )
    order.versions.append(version)
    order.version = number
    order.updated_at = now
    return version


def record_version(
    session: Session,
    order: Order,
    *,
    by: str,
    reason: str,
    at: dt.datetime | None = None,
) -> OrderVersion | None:
    """The order's next version, flushed and announced (OrderChanged), if anything changed."""
    session.flush()
    version = next_version(order, by=by, reason=reason, at=at)
    if version is not None:
        session.flush()
        publish(session, OrderChanged(order_id=order.id, version=version.version))
    return version
