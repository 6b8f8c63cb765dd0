"""An order's lifecycle: which status may follow which, and why a move is refused."""

from __future__ import annotations

STATUSES: tuple[str, ...] = (
    "draft",
    "submitted",
    "awaiting_fitting",
    "active",
    "suspended",
    "ended",
)
END_REASONS: tuple[str, ...] = ("completed", "revoked", "expired")

# Monitoring can only be completed once it has started; before that an order is withdrawn
# (revoked) or lapses (expired).
_NEXT: dict[str, frozenset[str]] = {
    "draft": frozenset({"submitted", "ended"}),
    "submitted": frozenset({"awaiting_fitting", "ended"}),
    "awaiting_fitting": frozenset({"active", "ended"}),
    "active": frozenset({"suspended", "ended"}),
    "suspended": frozenset({"active", "ended"}),
    "ended": frozenset(),
}
_END_REASONS_FROM: dict[str, frozenset[str]] = {
    "draft": frozenset({"revoked", "expired"}),
    "submitted": frozenset({"revoked", "expired"}),
    "awaiting_fitting": frozenset({"revoked", "expired"}),
    "active": frozenset(END_REASONS),
    "suspended": frozenset(END_REASONS),
}


class IllegalTransition(ValueError):
    """A status change the lifecycle does not allow."""


def check_transition(current: str, target: str, end_reason: str | None = None) -> None:
    """Raise IllegalTransition unless `current` may move to `target` (with `end_reason`)."""
    if target not in STATUSES:
        raise IllegalTransition(f"{target!r} is not an order status")
    if target not in _NEXT.get(current, frozenset()):
        allowed = ", ".join(sorted(_NEXT.get(current, frozenset()))) or "none (the order has ended)"
        raise IllegalTransition(
            f"an order that is {current} cannot become {target}; it can become: {allowed}"
        )
    if target == "ended":
        reasons = _END_REASONS_FROM[current]
        if end_reason not in reasons:
            raise IllegalTransition(
                f"ending a {current} order needs an end reason of {', '.join(sorted(reasons))}"
                f" (got {end_reason!r})"
            )
    elif end_reason is not None:
        raise IllegalTransition("only ending an order takes an end reason")


def allowed_transitions(current: str) -> list[tuple[str, str | None]]:
    """Every (target, end_reason) legal from `current`."""
    out: list[tuple[str, str | None]] = []
    for target in sorted(_NEXT.get(current, frozenset())):
        if target == "ended":
            out.extend((target, r) for r in sorted(_END_REASONS_FROM[current]))
        else:
            out.append((target, None))
    return out
