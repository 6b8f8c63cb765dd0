"""Domain events: how an upstream domain tells downstream ones, without knowing them.

Data flows one way (cases -> telemetry -> compliance -> alerts). A domain defines its event
dataclasses in `<domain>/events.py` and calls `publish(session, event)`; a downstream domain
lists handlers in `<domain>/handlers.py` as `HANDLERS = {EventType: [handler, ...]}`.
Handlers run at once, in the publisher's transaction, so what they write commits (or rolls
back) with the change that caused it.

Work that should happen once however many events ask for it (re-evaluating an allocation
that several events touched) is *deferred*: a handler calls `defer(session, key, make)` and
adds to the pending work registered under `key`; the work runs when the outermost `publish`
returns, still inside the transaction and before the publisher carries on. A publisher that
sends many events at once wraps them in `with batch(session):` so their deferred work runs
once, when the block ends. Events published while deferred work runs (violations changed)
are handled at once and may defer more work, which runs in the same settling.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol, TypeVar

from sqlalchemy.orm import Session

from tagwatch.domains import domain_modules

Handler = Callable[[Session, Any], None]


class Deferred(Protocol):
    """Pending work accumulated from several events; `run` does it once."""

    def run(self, session: Session) -> None: ...


D = TypeVar("D", bound=Deferred)
_STATE_KEY = "tagwatch.events"


@dataclass
class _State:
    depth: int = 0
    pending: dict[Hashable, Deferred] = field(default_factory=dict)


@cache
def _handlers() -> dict[type, tuple[Handler, ...]]:
    merged: dict[type, list[Handler]] = defaultdict(list)
    for module in domain_modules("handlers"):
        for event_type, handlers in module.HANDLERS.items():
            merged[event_type].extend(handlers)
    return {event_type: tuple(handlers) for event_type, handlers in merged.items()}


def _state(session: Session) -> _State:
    state = session.info.get(_STATE_KEY)
    if state is None:
        state = session.info[_STATE_KEY] = _State()
    return state


def publish(session: Session, event: object) -> None:
    """Run the event's handlers now; then, unless an enclosing `publish` or `batch` will,
    run the work they deferred."""
    with batch(session):
        for handler in _handlers().get(type(event), ()):
            handler(session, event)


@contextmanager
def batch(session: Session) -> Iterator[None]:
    """Events published inside share one settling: deferred work runs once, at the end."""
    state = _state(session)
    state.depth += 1
    try:
        yield
    except BaseException:
        state.depth -= 1
        if state.depth == 0:
            # The transaction is failing: its pending work must not leak into the next one.
            state.pending.clear()
        raise
    state.depth -= 1
    if state.depth == 0:
        _settle(session, state)


def defer(session: Session, key: Hashable, make: Callable[[], D]) -> D:
    """The pending work under `key` for this settling, made by `make()` the first time.
    Call only from a handler (or inside `batch`): that is when it is sure to run."""
    state = _state(session)
    if state.depth == 0:
        raise RuntimeError("defer() outside publish() or batch(): the work would never run")
    work = state.pending.get(key)
    if work is None:
        work = state.pending[key] = make()
    return work  # type: ignore[return-value]


def _settle(session: Session, state: _State) -> None:
    # Held above zero meanwhile, so events published by the work are settled by this loop.
    state.depth += 1
    try:
        while state.pending:
            key = next(iter(state.pending))
            work = state.pending.pop(key)
            work.run(session)
    except BaseException:
        state.pending.clear()
        raise
    finally:
        state.depth -= 1
