"""The case file as rows (`person_view`, `order_views`) says what the ORM reads say.

A person's page reads rows instead of objects; for every kind of caller and every person it
must show the same people, the same orders (scoped on their own: a person in scope may have
an order on another team's caseload) and the same conditions, addresses, safeguarding checks,
allocations and versions, in the same order.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy.orm import Session

from case_builders import allocate
from tagwatch.access.models import Team, User
from tagwatch.access.permissions import PERMISSIONS
from tagwatch.access.principal import Principal
from tagwatch.cases import repository
from tagwatch.cases.models import (
    Address,
    Allocation,
    Condition,
    Device,
    Order,
    OrderVersion,
    PersonName,
    SafeguardingCheck,
)

FITTED = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
TIMETABLE = [{"day": "monday", "start": "19:00", "end": "07:00"}]
ZONE = {"type": "Polygon", "coordinates": [[[0, 51], [0.1, 51], [0.1, 51.1], [0, 51]]]}


def _caller(permissions: frozenset[str] = frozenset(PERMISSIONS), **scope: Any) -> Principal:
    return Principal(
        user_id=None,
        username="caller",
        display_name="Caller",
        roles=frozenset({"test"}),
        permissions=permissions - scope.pop("without", frozenset()),
        **scope,
    )


def _case_file(db: Session, number: int, officer: str, restricted: bool = False) -> int:
    """A person with two names, two addresses, and an order with a curfew (at an address with
    two safeguarding checks), an exclusion zone, two versions and two allocations."""
    first = allocate(
        db,
        person_ref=f"VIEW-{number}",
        order_ref=f"VIEW-ORD-{number}",
        serial=f"VIEW-{number}-A",
        fitted_at=FITTED,
        removed_at=FITTED + dt.timedelta(days=3),
        number=number,
        person={"restricted": restricted, "crn": f"V{number:06d}"},
        order={"responsible_officer": officer},
    )
    person_id, order_id = first.person_id, first.order_id
    device = Device(serial=f"VIEW-{number}-B", type="rf_tag", model="R1", batch="B2")
    db.add(device)
    db.flush()
    db.add(
        Allocation(device_id=device.id, order_id=order_id, person_id=person_id, fitted_at=FITTED)
    )
    for kind, given in (("primary", "Ada"), ("alias", "Ida")):
        db.add(
            PersonName(
                person_id=person_id,
                kind=kind,
                given=given,
                family=f"View{number}",
                normalised=f"{given.lower()} view{number}",
                normalised_family=f"view{number}",
            )
        )
    addresses = [
        Address(
            person_id=person_id,
            ref=f"A{n}",
            line1=f"{n} High Street",
            town="London",
            postcode="N1 1AA",
            lat=51.5 + n / 100,
            lon=-0.1,
        )
        for n in (1, 2)
    ]
    db.add_all(addresses)
    db.flush()
    for kind in ("police", "social_care"):
        db.add(
            SafeguardingCheck(
                address_id=addresses[1].id,
                kind=kind,
                checked_by="checker",
                checked_at=FITTED,
                outcome="suitable",
            )
        )
    db.add_all(
        [
            Condition(
                order_id=order_id,
                type="curfew",
                start=FITTED,
                address_id=addresses[1].id,
                timetable=TIMETABLE,
            ),
            Condition(
                order_id=order_id,
                type="exclusion_zone",
                start=FITTED,
                end=FITTED + dt.timedelta(days=30),
                name="Town centre",
                geometry=ZONE,
            ),
        ]
    )
    for version in (2, 1):  # stored out of order: both reads give them by version
        db.add(
            OrderVersion(
                order_id=order_id,
                version=version,
                at=FITTED + dt.timedelta(hours=version),
                by="officer",
                reason=f"version {version}",
                changes=[f"change {version}"],
            )
        )
    db.flush()
    return int(person_id)


@pytest.fixture
def world(db: Session) -> tuple[int, list[int]]:
    team = Team(name="Views team", delivery_unit_code="LDN-CAM")
    db.add(team)
    db.flush()
    db.add(User(username="v.officer", display_name="v.officer", roles=[], team_id=team.id))
    people = [
        _case_file(db, 1, "v.officer"),
        _case_file(db, 2, "v.stranger"),
        _case_file(db, 3, "v.officer", restricted=True),
    ]
    # A second order for the first person, on another team's caseload.
    other = Order(
        ref="VIEW-ORD-1-OTHER",
        person_id=people[0],
        type="community_order",
        status="ended",
        notifying_org_kind="court",
        notifying_org_name="Another Court",
        responsible_org_kind="probation",
        responsible_org_name="London Probation",
        region_code="LDN",
        delivery_unit_code="LDN-HACK",
        responsible_officer="v.stranger",
        start_date=dt.date(2025, 1, 1),
        end_date=dt.date(2025, 6, 1),
    )
    db.add(other)
    db.flush()
    return team.id, people


def _callers(team_id: int) -> dict[str, Principal]:
    return {
        "practitioner": _caller(team_id=team_id, without=frozenset({"restricted:read"})),
        "restricted reader": _caller(team_id=team_id),
        "manager": _caller(delivery_unit_code="LDN-CAM", without=frozenset({"restricted:read"})),
        "national": _caller(),
        "police": _caller(force_code="MPS"),
    }


def _address(a: Any) -> tuple[Any, ...]:
    return (a.id, a.line1, a.town, a.postcode, a.lat, a.lon)


def _order(o: Any) -> tuple[Any, ...]:
    return (
        (o.id, o.ref, o.type, o.status, o.start_date, o.end_date, o.responsible_officer),
        (o.delivery_unit_code, o.region_code, o.notifying_org_kind, o.notifying_org_name),
        [
            (
                c.id,
                c.type,
                c.start,
                c.end,
                c.name,
                c.geometry,
                c.timetable,
                c.address and _address(c.address),
                c.address
                and [
                    (s.kind, s.outcome, s.checked_by, s.checked_at)
                    for s in c.address.safeguarding_checks
                ],
            )
            for c in o.conditions
        ],
        [
            (a.id, a.fitted_at, a.removed_at, a.device.type, a.device.serial, a.device.model)
            for a in o.allocations
        ],
        [(v.version, v.at, v.by, v.reason, v.changes) for v in o.versions],
    )


def test_rows_show_the_same_people_and_orders_as_the_objects(
    db: Session, world: tuple[int, list[int]]
) -> None:
    team_id, people = world
    for name, caller in _callers(team_id).items():
        for person_id in people:
            expected = repository.person_by_id(db, caller, person_id)
            found = repository.person_view(db, caller, person_id)
            assert (found is None) == (expected is None), (name, person_id)
            orders = repository.orders_of(db, caller, person_id)
            views = repository.order_views(db, caller, person_id)
            assert [_order(v) for v in views] == [_order(o) for o in orders], (name, person_id)
            if expected is None or found is None:
                continue
            fields = ["id", "ref", "date_of_birth", "crn", "pnc", "nomis", "sex", "gender"]
            fields += ["nationality", "language", "interpreter_needed"]
            assert [getattr(found, f) for f in fields] == [getattr(expected, f) for f in fields]
            assert [(n.kind, n.given, n.family) for n in found.names] == [
                (n.kind, n.given, n.family) for n in expected.names
            ]
            assert found.primary_name and expected.primary_name
            assert found.primary_name.given == expected.primary_name.given
            assert [_address(a) for a in found.addresses] == [
                _address(a) for a in expected.addresses
            ]


def test_a_person_in_scope_shows_only_the_orders_in_scope(
    db: Session, world: tuple[int, list[int]]
) -> None:
    team_id, people = world
    callers = _callers(team_id)
    practitioner = [o.ref for o in repository.order_views(db, callers["practitioner"], people[0])]
    national = [o.ref for o in repository.order_views(db, callers["national"], people[0])]
    assert practitioner == ["VIEW-ORD-1"]
    assert national == ["VIEW-ORD-1", "VIEW-ORD-1-OTHER"]
    assert repository.order_views(db, callers["police"], people[0]) == []
    assert repository.person_view(db, callers["practitioner"], 10**9) is None
