"""The case record's JSON API: people, duplicates, orders, versions, lifecycle, devices,
reference data, scoping and auditing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tagwatch.access.models import AuditEntry, Team, User
from tagwatch.access.permissions import PERMISSIONS
from tagwatch.access.principal import Principal
from tagwatch.cases import samples

API = "/api/v1"


def principal(permissions: set[str] | None = None, **scope: Any) -> Principal:
    return Principal(
        user_id=None,
        username=str(scope.pop("username", "tester")),
        display_name="Test",
        roles=frozenset({"test"}),
        permissions=frozenset(PERMISSIONS) if permissions is None else frozenset(permissions),
        **scope,
    )


def new_person(number: int, **changes: Any) -> dict[str, Any]:
    person = samples.person(number)
    for key in ("ref", "orders"):
        person.pop(key)
    person.update(changes)
    return person


def new_order(**changes: Any) -> dict[str, Any]:
    order = copy.deepcopy(samples.person(1)["orders"][0])
    for key in ("ref", "status", "end_reason", "allocations"):
        order.pop(key)
    order.update(changes)
    return order


@pytest.fixture
def api(seeded: Session, client: TestClient) -> TestClient:
    return client


def create(api: TestClient, number: int, **changes: Any) -> str:
    response = api.post(f"{API}/people", json=new_person(number, **changes))
    assert response.status_code == 201, response.text
    return str(response.json()["ref"])


def test_create_read_and_update_a_person(api: TestClient) -> None:
    ref = create(api, 7)
    person = api.get(f"{API}/people/{ref}").json()
    assert person["identifiers"] == {
        "crn": "X000007",
        "pnc": samples.person(7)["identifiers"]["pnc"],
    }
    assert person["addresses"][0]["postcode"] == "SE1 7PB"
    changed = api.patch(f"{API}/people/{ref}", json={"gender": "prefers_not_to_say"})
    assert changed.status_code == 200 and changed.json()["gender"] == "prefers_not_to_say"
    bad = api.patch(f"{API}/people/{ref}", json={"sex": "unknown", "identifiers": {"nomis": "1"}})
    assert bad.status_code == 422
    errors = bad.json()["detail"]["errors"]
    assert any(e.startswith("sex: ") for e in errors) and any(
        e.startswith("identifiers.nomis: ") for e in errors
    )


def test_a_shared_identifier_is_refused_with_the_existing_ref(api: TestClient) -> None:
    ref = create(api, 8)
    clash = new_person(9, identifiers={"crn": "X000008"})
    response = api.post(f"{API}/people", json=clash)
    assert response.status_code == 409
    assert response.json()["detail"]["existing_ref"] == ref


def test_same_folded_name_and_birth_date_must_be_confirmed_or_linked(api: TestClient) -> None:
    first = create(
        api,
        3,
        names=[{"kind": "primary", "given": "Zoë", "family": "O'Neil-Smith", "middle": None}],
    )
    twin_name = {"kind": "primary", "given": "ZOE", "family": "ONeil Smith", "middle": "Ann"}
    twin = new_person(
        4, date_of_birth=new_person(3)["date_of_birth"], identifiers={}, names=[twin_name]
    )
    possible = api.post(f"{API}/people", json=twin)
    assert possible.status_code == 409
    assert possible.json()["detail"]["matches"] == [first]
    linked = api.post(f"{API}/people", params={"link_to": first}, json=twin)
    assert linked.status_code == 201 and linked.json()["linked"] is True
    assert [n["given"] for n in linked.json()["names"]] == ["Zoë", "ZOE"]
    confirmed = api.post(f"{API}/people", params={"confirm_not_duplicate": "true"}, json=twin)
    assert confirmed.status_code == 201 and confirmed.json()["ref"] != first


def test_search_by_name_identifier_and_birth_date_is_audited(
    api: TestClient, seeded: Session
) -> None:
    ref = create(
        api,
        5,
        names=[{"kind": "primary", "given": "Seán", "family": "O'Brien-Kelly", "middle": None}],
    )
    create(api, 6)
    for params in ({"name": "sean obrien"}, {"name": "o'brien kelly"}, {"crn": "x000005"},
                   {"pnc": samples.person(5)["identifiers"]["pnc"]},
                   {"date_of_birth": new_person(5)["date_of_birth"], "name": "kelly"}):  # fmt: skip
        found = api.get(f"{API}/people", params=params).json()
        assert [p["ref"] for p in found["items"]] == [ref], params
    assert api.get(f"{API}/people", params={"crn": "bad"}).status_code == 422
    searches = seeded.scalars(select(AuditEntry).where(AuditEntry.action == "person.search")).all()
    assert len(searches) == 5
    assert searches[0].detail["terms"]["name"] == "sean obrien"
    api.get(f"{API}/people/{ref}")
    assert (
        seeded.scalars(select(AuditEntry).where(AuditEntry.action == "person.view"))
        .one()
        .subject_id
        == ref
    )
    api.get(f"{API}/people/{ref}/orders")
    viewed = seeded.scalars(select(AuditEntry).where(AuditEntry.action == "order.view")).one()
    assert viewed.subject_id == ref


def lifecycle(api: TestClient, order_ref: str, status: str, **extra: Any) -> Any:
    return api.post(
        f"{API}/orders/{order_ref}/transitions", json={"status": status, "reason": "test", **extra}
    )


def test_order_versions_lifecycle_and_safeguarding(api: TestClient) -> None:
    ref = create(api, 11)
    order = new_order()
    order["conditions"][0]["safeguarding_checks"] = []
    created = api.post(f"{API}/people/{ref}/orders", json=order)
    assert created.status_code == 201, created.text
    order_ref = created.json()["ref"]
    assert created.json()["status"] == "draft" and created.json()["version"] == 1
    varied = api.patch(
        f"{API}/orders/{order_ref}",
        json={"changes": {"delivery_unit": "LDN-LAMB"}, "reason": "moved"},
    )
    assert varied.status_code == 200 and varied.json()["version"] == 2
    wrong_unit = api.patch(
        f"{API}/orders/{order_ref}", json={"changes": {"delivery_unit": "GM-BOLTON"}, "reason": "x"}
    )
    assert wrong_unit.status_code == 422 and "is not in region LDN" in wrong_unit.text
    assert lifecycle(api, order_ref, "active").status_code == 409  # draft cannot jump to active
    assert lifecycle(api, order_ref, "submitted").json()["status"] == "submitted"
    assert lifecycle(api, order_ref, "awaiting_fitting").status_code == 200
    refused = lifecycle(api, order_ref, "active")
    assert (
        refused.status_code == 409
        and "lacks a domestic abuse and a child safeguarding check" in refused.text
    )
    check = {
        "kind": "domestic_abuse",
        "checked_by": "po1",
        "checked_at": "2026-11-20T10:00:00Z",
        "outcome": "no_concerns",
    }
    assert (
        api.post(f"{API}/people/{ref}/addresses/home/safeguarding-checks", json=check).status_code
        == 201
    )
    assert "lacks a child safeguarding check" in lifecycle(api, order_ref, "active").text
    unsuitable = {**check, "kind": "child_safeguarding", "outcome": "concerns_unsuitable"}
    api.post(f"{API}/people/{ref}/addresses/home/safeguarding-checks", json=unsuitable)
    assert "found the curfew address unsuitable" in lifecycle(api, order_ref, "active").text
    # a second address cleared, and the curfew moved there by replacing the condition
    second = {**new_person(11)["addresses"][0], "ref": "second"}
    assert api.post(f"{API}/people/{ref}/addresses", json=second).status_code == 201
    for kind in ("domestic_abuse", "child_safeguarding"):
        api.post(
            f"{API}/people/{ref}/addresses/second/safeguarding-checks", json={**check, "kind": kind}
        )
    curfew = {**new_order()["conditions"][0], "address_ref": "second", "safeguarding_checks": []}
    assert (
        api.post(
            f"{API}/orders/{order_ref}/conditions", json={"condition": curfew, "reason": "moved"}
        ).status_code
        == 201
    )
    first_curfew = api.get(f"{API}/orders/{order_ref}").json()["conditions"][0]["id"]
    removed = api.delete(
        f"{API}/orders/{order_ref}/conditions/{first_curfew}", params={"reason": "moved"}
    )
    assert removed.status_code == 200 and len(removed.json()["conditions"]) == 2
    active = lifecycle(api, order_ref, "active")
    assert active.status_code == 200, active.text
    assert lifecycle(api, order_ref, "suspended").status_code == 200
    assert lifecycle(api, order_ref, "active").status_code == 200
    assert lifecycle(api, order_ref, "ended").status_code == 409  # needs an end reason
    assert (
        lifecycle(api, order_ref, "ended", end_reason="completed").json()["end_reason"]
        == "completed"
    )
    assert lifecycle(api, order_ref, "active").status_code == 409
    history = api.get(f"{API}/orders/{order_ref}/history").json()
    assert [v["version"] for v in history] == list(range(1, len(history) + 1))
    assert history[1]["reason"] == "moved" and history[1]["changes"] == [
        f"delivery_unit: {order['delivery_unit']} -> LDN-LAMB"
    ]
    assert history[-1]["changes"] == ["status: active -> ended", "end_reason: none -> completed"]
    assert all(v["by"] == "tester" for v in history)


def test_a_bad_curfew_names_the_field(api: TestClient) -> None:
    ref = create(api, 12)
    order = new_order()
    order["conditions"][0]["timetable"] = [{"day": "monday", "start": "20:00", "end": "21:00"}]
    response = api.post(f"{API}/people/{ref}/orders", json=order)
    assert response.status_code == 422
    assert response.json()["detail"]["errors"] == [
        "conditions[0].timetable[0]: monday totals 1 hours; each day must total 2 to 20 hours"
    ]


def test_devices_are_on_one_allocation_at_a_time(api: TestClient) -> None:
    ref = create(api, 13)
    order_ref = api.post(f"{API}/people/{ref}/orders", json=new_order()).json()["ref"]
    for status in ("submitted", "awaiting_fitting"):
        lifecycle(api, order_ref, status)
    assert api.post(f"{API}/devices", json=samples.device(13)).status_code == 201
    assert api.post(f"{API}/devices", json=samples.device(13)).status_code == 409
    serial = samples.device(13)["serial"]
    fit = api.post(
        f"{API}/orders/{order_ref}/allocations",
        json={"device": serial, "fitted_at": "2026-11-01T10:00:00Z"},
    )
    assert fit.status_code == 201, fit.text
    again = api.post(
        f"{API}/orders/{order_ref}/allocations",
        json={"device": serial, "fitted_at": "2026-11-05T10:00:00Z"},
    )
    assert again.status_code == 409 and again.json()["detail"]["error"] == "device_overlap"
    allocation = fit.json()["id"]
    early = api.post(
        f"{API}/devices/allocations/{allocation}/removal",
        json={"removed_at": "2026-10-01T00:00:00Z"},
    )
    assert early.status_code == 422
    removed = api.post(
        f"{API}/devices/allocations/{allocation}/removal",
        json={"removed_at": "2026-11-03T00:00:00Z"},
    )
    assert removed.status_code == 200 and removed.json()["removed_at"].startswith("2026-11-03")
    before = api.post(
        f"{API}/orders/{order_ref}/allocations",
        json={"device": serial, "fitted_at": "2026-11-02T00:00:00Z"},
    )
    assert before.status_code == 409
    after = api.post(
        f"{API}/orders/{order_ref}/allocations",
        json={"device": serial, "fitted_at": "2026-11-03T00:00:00Z"},
    )
    assert after.status_code == 201
    listed = api.get(f"{API}/devices/{serial}/allocations").json()
    assert [a["fitted_at"][:10] for a in listed] == ["2026-11-01", "2026-11-03"]
    history = api.get(f"{API}/orders/{order_ref}/history").json()
    assert history[-1]["reason"] == f"device {serial} fitted"


def test_reference_data_is_seeded_and_maintained(
    api: TestClient, make_client: Callable[..., TestClient]
) -> None:
    regions = api.get(f"{API}/reference-data", params={"kind": "region"}).json()
    assert [r["code"] for r in regions] == [
        "NE",
        "NW",
        "YH",
        "GM",
        "EM",
        "WM",
        "EE",
        "KSS",
        "LDN",
        "SW",
        "SC",
        "WLS",
    ]
    forces = api.get(f"{API}/reference-data", params={"kind": "police_force"}).json()
    assert len(forces) == 43 and {"MPS", "CITY", "GMP", "WMP"} <= {f["code"] for f in forces}
    london = [
        u
        for u in api.get(f"{API}/reference-data", params={"kind": "delivery_unit"}).json()
        if u["parent_code"] == "LDN"
    ]
    assert len(london) == 18
    unit = {"kind": "delivery_unit", "code": "LDN-TEST", "label": "Test unit", "parent_code": "LDN"}
    assert api.post(f"{API}/reference-data", json=unit).status_code == 201
    assert api.post(f"{API}/reference-data", json=unit).status_code == 409
    assert (
        api.post(
            f"{API}/reference-data", json={**unit, "code": "X-1", "parent_code": "ZZ"}
        ).status_code
        == 409
    )
    retired = api.patch(f"{API}/reference-data/delivery_unit/LDN-TEST", json={"active": False})
    assert retired.status_code == 200 and retired.json()["active"] is False
    reader = make_client(principal({"refdata:read"}))
    assert reader.get(f"{API}/reference-data").status_code == 200
    assert reader.post(f"{API}/reference-data", json=unit).status_code == 403


def test_people_and_orders_are_scoped(
    api: TestClient, seeded: Session, make_client: Callable[..., TestClient]
) -> None:
    team = Team(name="Camden team", delivery_unit_code="LDN-CAMISL")
    seeded.add(team)
    seeded.flush()
    seeded.add_all([User(username="officer1", display_name="One", team_id=team.id, roles=[]),
                    User(username="officer2", display_name="Two", roles=[])])  # fmt: skip
    seeded.flush()
    mine, theirs, hidden = create(api, 21), create(api, 22), create(api, 23, restricted=True)
    for ref, officer, unit in ((mine, "officer1", "LDN-CAMISL"), (theirs, "officer2", "LDN-LAMB"),
                               (hidden, "officer1", "LDN-CAMISL")):  # fmt: skip
        response = api.post(
            f"{API}/people/{ref}/orders",
            json=new_order(responsible_officer=officer, delivery_unit=unit),
        )
        assert response.status_code == 201

    def visible(caller: Principal) -> set[str]:
        client = make_client(caller)
        listed = client.get(f"{API}/people", params={"page_size": 100})
        return {p["ref"] for p in listed.json()["items"]} if listed.status_code == 200 else set()

    everything = set(PERMISSIONS) - {"restricted:read"}
    assert visible(principal(everything, team_id=team.id)) == {mine}
    assert visible(principal(everything | {"restricted:read"}, team_id=team.id)) == {mine, hidden}
    assert visible(principal(everything, delivery_unit_code="LDN-LAMB")) == {theirs}
    assert visible(principal(everything, region_code="LDN")) == {mine, theirs}
    assert visible(principal(everything, region_code="NE")) == set()
    assert visible(principal(everything, force_code="MPS")) == set()
    assert visible(principal()) == {mine, theirs, hidden}
    practitioner = make_client(principal(everything, team_id=team.id))
    assert practitioner.get(f"{API}/people/{theirs}").status_code == 404
    assert practitioner.get(f"{API}/people/{hidden}").status_code == 404
    assert practitioner.get(f"{API}/people/{mine}").status_code == 200
    assert practitioner.get(f"{API}/people/{theirs}/orders").status_code == 404
    assert make_client(principal({"order:read"})).get(f"{API}/people/{mine}").status_code == 403
    # a person with no order yet can be given a first one by a scoped practitioner, who then
    # sees them; a person already in another caseload cannot
    fresh = create(make_client(principal()), 24)
    practitioner = make_client(principal(everything, team_id=team.id))
    assert practitioner.get(f"{API}/people/{fresh}").status_code == 404
    first = practitioner.post(
        f"{API}/people/{fresh}/orders", json=new_order(responsible_officer="officer1")
    )
    assert first.status_code == 201
    assert practitioner.get(f"{API}/people/{fresh}").status_code == 200
    taken = practitioner.post(
        f"{API}/people/{theirs}/orders", json=new_order(responsible_officer="officer1")
    )
    assert taken.status_code == 404


def test_aliases_and_identifier_changes(api: TestClient) -> None:
    ref, other = create(api, 31), create(api, 32)
    alias = {"given": "Jo", "family": "D'Arcy", "middle": None}
    added = api.post(f"{API}/people/{ref}/aliases", json=alias)
    assert added.status_code == 201
    assert [n["kind"] for n in added.json()["names"]] == ["primary", "alias"]
    assert (
        api.post(f"{API}/people/{ref}/aliases", json={**alias, "family": "DArcy"}).status_code
        == 409
    )
    assert api.get(f"{API}/people", params={"name": "darcy"}).json()["total"] == 1
    clash = api.patch(f"{API}/people/{other}", json={"identifiers": {"crn": "X000031"}})
    assert clash.status_code == 409 and clash.json()["detail"]["existing_ref"] == ref
    nomis = api.patch(f"{API}/people/{other}", json={"identifiers": {"nomis": "a1234bc"}})
    assert nomis.status_code == 200 and nomis.json()["identifiers"] == {"nomis": "A1234BC"}
