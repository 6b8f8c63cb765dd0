"""Local stand-ins for the services outside the machine: an HTTP receiver and an SMTP server.

They only record what they receive and answer as told; each test checks the request against
the documented contract itself.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope
from sqlalchemy.orm import Session

from tagwatch.access.models import User
from tagwatch.access.service import create_user
from tagwatch.cases.models import Allocation, Condition, Device, Order, Person
from tagwatch.compliance.models import Violation
from tagwatch.compliance.rules import RULE_SET_VERSION, RULES


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Answers every request with `status` and `reply`, and keeps what it was sent."""

    url: str
    status: int = 200
    reply: dict[str, Any] = field(default_factory=dict)
    received: list[ReceivedRequest] = field(default_factory=list)


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    state = HttpReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            state.received.append(
                ReceivedRequest(
                    method="POST",
                    path=self.path,
                    headers={key.lower(): value for key, value in self.headers.items()},
                    body=self.rfile.read(length),
                )
            )
            payload = json.dumps(state.reply).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class SmtpReceiver:
    host: str
    port: int
    # What to answer to RCPT TO; "250 OK" accepts.
    rcpt_reply: str = "250 OK"
    envelopes: list[Envelope] = field(default_factory=list)


@pytest.fixture
def smtp_receiver() -> Iterator[SmtpReceiver]:
    state = SmtpReceiver(host="127.0.0.1", port=_free_port())

    class Handler:
        async def handle_RCPT(
            self,
            _server: object,
            _session: object,
            envelope: Envelope,
            address: str,
            _opts: list[str],
        ) -> str:
            if state.rcpt_reply.startswith("250"):
                envelope.rcpt_tos.append(address)
            return state.rcpt_reply

        async def handle_DATA(self, _server: object, _session: object, envelope: Envelope) -> str:
            state.envelopes.append(envelope)
            return "250 Message accepted for delivery"

    controller = Controller(Handler(), hostname=state.host, port=state.port)
    controller.start()
    try:
        yield state
    finally:
        controller.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---------------------------------------------------------------- the case record and violations

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass
class Case:
    order: Order
    allocation: Allocation


@pytest.fixture
def make_case(db: Session) -> Callable[..., Case]:
    """A person with an order and a fitted device, written through the case models."""
    counter = itertools.count(1)

    def build(
        officer: str = "a.officer",
        unit: str = "N07-LDN",
        status: str = "active",
        fitting_deadline: dt.datetime | None = None,
        fitted_at: dt.datetime | None = None,
        exclusion_zone: list[list[float]] | None = None,
    ) -> Case:
        """`exclusion_zone`: a WGS84 ring ([lon, lat] pairs, closed) the person must avoid."""
        n = next(counter)
        person = Person(
            ref=f"P-ALERT-{n}",
            date_of_birth=dt.date(1990, 1, n % 28 + 1),
            sex="male",
            gender="man",
            ethnicity="W1",
            disability="not_recorded",
            nationality="GBR",
            religion="not_recorded",
            language="en",
        )
        db.add(person)
        db.flush()
        order = Order(
            ref=f"ORD-ALERT-{n}",
            person_id=person.id,
            type="community_order",
            status=status,
            notifying_org_kind="court",
            notifying_org_name="Westminster Magistrates' Court",
            responsible_org_kind="probation",
            responsible_org_name="London Probation",
            region_code="LDN",
            delivery_unit_code=unit,
            responsible_officer=officer,
            start_date=dt.date(2026, 1, 1),
            end_date=dt.date(2027, 1, 1),
            fitting_deadline=fitting_deadline,
        )
        db.add(order)
        db.flush()
        if exclusion_zone is not None:
            db.add(
                Condition(
                    order_id=order.id,
                    type="exclusion_zone",
                    start=NOW - dt.timedelta(days=30),
                    end=None,
                    name="Exclusion zone",
                    geometry={"type": "Polygon", "coordinates": [exclusion_zone]},
                )
            )
        device = Device(serial=f"GPS-ALERT-{n}", type="gps_tag", model="T1", batch="B1")
        db.add(device)
        db.flush()
        allocation = Allocation(
            device_id=device.id,
            order_id=order.id,
            person_id=person.id,
            fitted_at=fitted_at or NOW - dt.timedelta(days=10),
        )
        db.add(allocation)
        db.flush()
        return Case(order, allocation)

    return build


@pytest.fixture
def make_violation(db: Session) -> Callable[..., Violation]:
    """A Violation row as the compliance service stores it."""

    def build(
        case: Case,
        rule_id: str = "curfew.absence.gps",
        status: str = "confirmed",
        start: dt.datetime | None = None,
        fixes: list[int] | None = None,
        events: list[int] | None = None,
    ) -> Violation:
        rule = RULES[rule_id]
        violation = Violation(
            allocation_id=case.allocation.id,
            order_id=case.order.id,
            person_id=case.order.person_id,
            condition_key=0,
            rule_id=rule_id,
            rule_version=rule.version,
            rule_set_version=RULE_SET_VERSION,
            start=start or NOW - dt.timedelta(minutes=10),
            end=None,
            severity=rule.severity,
            status=status,
            needs_review=rule.needs_review,
            evidence_fixes=fixes or [],
            evidence_events=events or [],
            first_found_at=NOW,
            evaluated_at=NOW,
        )
        db.add(violation)
        db.flush()
        return violation

    return build


@pytest.fixture
def make_user(db: Session) -> Callable[..., User]:
    def build(
        username: str,
        role: str,
        unit: str = "N07-LDN",
        email: str | None = None,
        team: str | None = None,
    ) -> User:
        return create_user(
            db,
            username=username,
            roles=[role],
            email=email or f"{username}@probation.example",
            delivery_unit_code=unit,
            team_name=team,
        )

    return build
