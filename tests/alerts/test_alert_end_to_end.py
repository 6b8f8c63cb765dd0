"""From a device record to an officer's outbox, through telemetry, compliance and alerts."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from tagwatch.alerts.models import Alert, OutboxMessage
from tagwatch.compliance.models import Violation
from tagwatch.db.base import utcnow
from tagwatch.geo.projection import to_wgs84
from tagwatch.settings import Settings
from tagwatch.telemetry.service import ingest
from tagwatch.telemetry.sources import items_from_body


def _send(db: Session, records: list[dict[str, object]], received_at: dt.datetime) -> None:
    ingest(
        db,
        items_from_body(json.dumps(records).encode()),
        channel="http",
        origin="test-gateway",
        settings=Settings(),
        received_at=received_at,
    )


def test_a_strap_tamper_record_reaches_the_officers_outbox_once(
    db: Session, make_case, make_user
) -> None:
    make_user("a.officer", "probation_practitioner")
    observed = utcnow().replace(microsecond=0) - dt.timedelta(minutes=2)
    case = make_case(officer="a.officer", fitted_at=observed - dt.timedelta(minutes=1))
    serial = case.allocation.device.serial
    received = observed + dt.timedelta(seconds=40)
    record = {
        "device": serial,
        "type": "status",
        "time": observed.isoformat(),
        "seq": 1,
        "strap": "open",
    }

    _send(db, [record], received)
    # The gateway retransmits the same record: nothing new is stored, raised or sent.
    _send(db, [record], received + dt.timedelta(seconds=30))

    violations = db.scalars(
        select(Violation).where(Violation.allocation_id == case.allocation.id)
    ).all()
    [violation] = violations
    assert violation.rule_id == "tamper.strap" and violation.status == "confirmed"
    [alert] = db.scalars(select(Alert)).all()
    assert alert.violation_id == violation.id
    assert alert.needs_tamper_review
    assert alert.event_at == observed
    assert alert.received_at == received
    assert alert.evaluated_at == received
    assert alert.raised_at >= alert.evaluated_at and alert.notified_at == alert.raised_at
    [message] = db.scalars(select(OutboxMessage)).all()
    assert message.recipient == "a.officer"
    assert message.subject == f"Strap tamper: alert {alert.id} needs action"
    assert "tamper alert" in message.body


def _wgs84(x: float, y: float) -> tuple[float, float]:
    lon, lat = to_wgs84([x], [y])
    return float(lon[0]), float(lat[0])


def test_a_possible_zone_entry_waits_and_the_confirmed_one_alerts(
    db: Session, make_case, make_user
) -> None:
    make_user("a.officer", "probation_practitioner")
    corners = [(531_000, 180_000), (531_300, 180_000), (531_300, 180_300), (531_000, 180_300)]
    ring = [list(_wgs84(x, y)) for x, y in [*corners, corners[0]]]
    first = utcnow().replace(microsecond=0) - dt.timedelta(minutes=5)
    case = make_case(fitted_at=first - dt.timedelta(seconds=30), exclusion_zone=ring)
    serial = case.allocation.device.serial

    def fix(n: int, x: float, y: float) -> dict[str, object]:
        lon, lat = _wgs84(x, y)
        t = first + dt.timedelta(minutes=n)
        return {
            "device": serial,
            "type": "gps",
            "time": t.isoformat(),
            "seq": n,
            "lat": lat,
            "lon": lon,
            "accuracy_m": 5.0,
            "source": "gnss",
        }

    outside, inside = (530_500, 180_150), (531_150, 180_150)
    # Two fixes in the zone a minute apart: a possible entry, not yet confirmed.
    _send(
        db,
        [fix(0, *outside), fix(1, *inside), fix(2, *inside)],
        first + dt.timedelta(minutes=2, seconds=5),
    )
    [violation] = db.scalars(select(Violation).where(Violation.rule_id == "zone.exclusion.entry"))
    assert violation.status == "possible"
    assert db.scalars(select(Alert)).all() == []

    # A third fix in the zone confirms it: one alert, received when that fix arrived.
    third_received = first + dt.timedelta(minutes=3, seconds=7)
    _send(db, [fix(3, *inside)], third_received)
    db.refresh(violation)
    assert violation.status == "confirmed"
    [alert] = db.scalars(select(Alert)).all()
    assert (alert.violation_id, alert.violation_type) == (violation.id, "zone.exclusion.entry")
    assert alert.event_at == first + dt.timedelta(minutes=1)
    assert alert.received_at == third_received
    assert len(db.scalars(select(OutboxMessage)).all()) == 1

    # Leaving the zone ends the violation: the same alert records the end.
    _send(db, [fix(4, *outside), fix(5, *outside)], first + dt.timedelta(minutes=5, seconds=3))
    db.refresh(alert)
    assert alert.violation_ended_at is not None
    assert len(db.scalars(select(Alert)).all()) == 1
    assert len(db.scalars(select(OutboxMessage)).all()) == 1
