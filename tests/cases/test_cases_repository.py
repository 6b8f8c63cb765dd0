"""The repository's scoped look-ups: a person by id, people by ids, open orders, the caseload.

One small world, three kinds of caller: a practitioner (their team's caseload), a manager
(their delivery unit) and the system (everyone); a restricted person is hidden from anyone
without the restricted permission, and a police officer browses no one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session

from case_builders import allocate
from tagwatch.access.models import Team, User
from tagwatch.access.permissions import PERMISSIONS
from tagwatch.access.principal import Principal
from tagwatch.cases import repository
from tagwatch.cases.models import PersonName

FITTED = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)


@dataclass(frozen=True)
class World:
    ours: int  # on our team's caseload, in our delivery unit
    colleague: int  # on a team colleague's caseload
    unit: int  # another team, same delivery unit
    elsewhere: int  # another delivery unit
    restricted: int  # our caseload, but restricted
    ended: int  # ours, but the order has ended
    team_id: int


def _caller(
    permissions: frozenset[str] = frozenset(PERMISSIONS) - {"restricted:read"}, **scope: object
) -> Principal:
    return Principal(
        user_id=None,
        username="caller",
        display_name="Caller",
        roles=frozenset({"test"}),
        permissions=permissions,
        **scope,  # type: ignore[arg-type]
    )


@pytest.fixture
def world(db: Session) -> World:
    team = Team(name="Repository team", delivery_unit_code="LDN-CAM")
    db.add(team)
    db.flush()
    for username in ("r.officer", "r.colleague"):
        db.add(User(username=username, display_name=username, roles=[], team_id=team.id))
    ids = []
    people = (
        ("ours", "r.officer", "LDN-CAM", False, "active"),
        ("colleague", "r.colleague", "LDN-CAM", False, "active"),
        ("unit", "r.stranger", "LDN-CAM", False, "active"),
        ("elsewhere", "r.stranger", "LDN-HACK", False, "active"),
        ("restricted", "r.officer", "LDN-CAM", True, "active"),
        ("ended", "r.officer", "LDN-CAM", False, "ended"),
    )
    for number, (ref, officer, unit, restricted, status) in enumerate(people, start=1):
        allocation = allocate(
            db,
            person_ref=f"REPO-{ref}",
            order_ref=f"REPO-ORD-{ref}",
            serial=f"REPO-{ref}",
            fitted_at=FITTED,
            number=number,
            person={"restricted": restricted},
            order={"responsible_officer": officer, "delivery_unit_code": unit, "status": status},
        )
        db.add(
            PersonName(
                person_id=allocation.person_id,
                kind="primary",
                given="Given",
                family=ref.capitalize(),
                normalised=f"given {ref}",
                normalised_family=ref,
            )
        )
        ids.append(allocation.person_id)
    db.flush()
    return World(*ids, team_id=team.id)


def test_person_by_id_is_none_outside_the_callers_scope(db: Session, world: World) -> None:
    practitioner = _caller(team_id=world.team_id)
    manager = _caller(delivery_unit_code="LDN-CAM")
    seen_by = {
        "practitioner": practitioner,
        "manager": manager,
        "restricted reader": _caller(frozenset(PERMISSIONS), team_id=world.team_id),
        "police": _caller(force_code="MPS"),
    }
    expected = {
        "practitioner": {world.ours, world.colleague, world.ended},
        "manager": {world.ours, world.colleague, world.unit, world.ended},
        "restricted reader": {world.ours, world.colleague, world.restricted, world.ended},
        "police": set(),
    }
    everyone = {world.ours, world.colleague, world.unit, world.elsewhere, world.restricted}
    everyone.add(world.ended)
    for name, caller in seen_by.items():
        visible = {p for p in everyone if repository.person_by_id(db, caller, p) is not None}
        assert visible == expected[name], name
        assert {p.id for p in repository.people_by_ids(db, caller, everyone)} == expected[name]
    system = {p for p in everyone if repository.person_by_id(db, None, p) is not None}
    assert system == everyone


def test_people_by_ids_loads_names_and_ignores_unknown_ids(db: Session, world: World) -> None:
    caller = _caller(team_id=world.team_id)
    # More ids than one IN list holds, almost all unknown: the look-up still answers once each.
    wanted = [world.ours, world.colleague, *range(10**9, 10**9 + 1200)]
    found = repository.people_by_ids(db, caller, wanted)
    assert sorted(p.id for p in found) == sorted([world.ours, world.colleague])
    assert {p.primary_name.family for p in found if p.primary_name} == {"Ours", "Colleague"}


def test_open_orders_leave_out_ended_orders_and_other_scopes(db: Session, world: World) -> None:
    practitioner = _caller(team_id=world.team_id)
    everyone = [world.ours, world.colleague, world.unit, world.restricted, world.ended]
    orders = repository.open_orders(db, practitioner, everyone)
    assert [o.person_id for o in orders] == [world.ours, world.colleague]
    assert [o.id for o in orders] == sorted(o.id for o in orders)
    assert all(o.allocations and o.allocations[0].device for o in orders)  # loaded for maps
    assert [o.person_id for o in repository.open_orders(db, practitioner, [world.ours])] == [
        world.ours
    ]
    unrestricted = _caller(frozenset(PERMISSIONS), team_id=world.team_id)
    open_people = {o.person_id for o in repository.open_orders(db, unrestricted)}
    assert {world.ours, world.colleague, world.restricted} <= open_people
    assert world.ended not in open_people


def test_people_in_scope_lists_the_caseload_by_primary_name(db: Session, world: World) -> None:
    listed = repository.people_in_scope(db, _caller(team_id=world.team_id))
    assert {p.id: p.label for p in listed} == {
        world.ours: "Given Ours",
        world.colleague: "Given Colleague",
        world.ended: "Given Ended",
    }
    assert repository.people_in_scope(db, _caller(force_code="MPS")) == []
