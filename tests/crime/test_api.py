"""The crime API: upload, matches, export, review and the guards and scopes around them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from crime_scene import SCENE, T0
from fastapi.testclient import TestClient

from tagwatch.access.permissions import PERMISSIONS
from tagwatch.access.principal import Principal


def caller(permissions: set[str] | None = None, **scope: object) -> Principal:
    return Principal(
        user_id=None,
        username=str(scope.pop("username", "api-user")),
        display_name="API user",
        roles=frozenset({"test"}),
        permissions=frozenset(PERMISSIONS if permissions is None else permissions),
        **scope,  # type: ignore[arg-type]
    )


def crime_file() -> bytes:
    end = T0 + dt.timedelta(hours=1)
    return (
        f"MPS,TFP,Theft,MPS20260302,01/7/26,{T0:%Y%m%d%H%M%S},{end:%Y%m%d%H%M%S},"
        f"{SCENE[0]:.0f},{SCENE[1]:.0f},,,,\n"
    ).encode()


def test_upload_match_review_and_export_over_http(
    make_client: Callable[..., TestClient],
    make_wearer,
    add_fixes,  # type: ignore[no-untyped-def]
) -> None:
    add_fixes(make_wearer("TW-API-1"), [(m, -500 + 50 * m, 0.0) for m in range(21)])
    hub = make_client(caller(username="caseworker"))
    response = hub.post(
        "/api/v1/crime/batches", files={"file": ("mps.csv", crime_file(), "text/csv")}
    )
    assert response.status_code == 201, response.text
    batch = response.json()
    assert batch["status"] == "successful" and batch["run"]["match_count"] == 1

    matches = hub.get(f"/api/v1/crime/batches/{batch['batch_id']}/matches").json()
    assert [m["person_ref"] for m in matches] == ["TW-API-1"]
    assert matches[0]["closest_distance_m"] < 1.0
    exported = hub.get(f"/api/v1/crime/batches/{batch['batch_id']}/matches.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    assert exported.text.splitlines()[0].startswith("batch_id,force,crime_ref,crime_type")

    match_id = matches[0]["match_id"]
    bad = hub.post(
        f"/api/v1/crime/matches/{match_id}/review", json={"decision": "maybe", "reason": "x"}
    )
    assert bad.status_code == 422 and "decision" in bad.json()["detail"]
    ok = hub.post(
        f"/api/v1/crime/matches/{match_id}/review",
        json={"decision": "qualified", "reason": "Passed the door during the window"},
    )
    assert ok.json()["review_state"] == "qualified"

    police = make_client(caller({"crime:read"}, username="pc", force_code="MPS"))
    assert police.get(f"/api/v1/crime/batches/{batch['batch_id']}/matches").json() == []
    manager = make_client(caller(username="manager"))
    assert manager.post(f"/api/v1/crime/matches/{match_id}/authorise").status_code == 200
    police = make_client(caller({"crime:read"}, username="pc", force_code="MPS"))
    assert len(police.get(f"/api/v1/crime/batches/{batch['batch_id']}/matches").json()) == 1
    pack = police.get(f"/api/v1/crime/matches/{match_id}/evidence.pdf")
    assert pack.status_code == 403  # reading matches is not downloading evidence
    pack = make_client(caller({"crime:evidence"}, username="pc", force_code="MPS")).get(
        f"/api/v1/crime/matches/{match_id}/evidence.pdf"
    )
    assert pack.status_code == 200 and pack.content.startswith(b"%PDF")
    kent = make_client(caller({"crime:read"}, username="kc", force_code="KNT"))
    assert kent.get(f"/api/v1/crime/batches/{batch['batch_id']}").status_code == 404
    assert kent.get("/api/v1/crime/batches").json() == []


def test_each_action_needs_its_permission(make_client: Callable[..., TestClient]) -> None:
    reader = make_client(caller({"crime:read"}))
    upload = reader.post(
        "/api/v1/crime/batches", files={"file": ("mps.csv", crime_file(), "text/csv")}
    )
    assert upload.status_code == 403
    assert reader.post("/api/v1/crime/batches/1/runs", json={}).status_code == 403
    assert reader.post("/api/v1/crime/matches/1/authorise").status_code == 403
    assert (
        reader.get("/api/v1/crime/where", params={"person": "x", "crime": "y"}).status_code == 403
    )


def test_matches_by_review_state_runs_and_the_word_pack(
    make_client: Callable[..., TestClient],
    make_wearer,
    add_fixes,  # type: ignore[no-untyped-def]
) -> None:
    add_fixes(make_wearer("TW-API-2"), [(m, -500 + 50 * m, 0.0) for m in range(21)])
    hub = make_client(caller(username="caseworker"))
    batch = hub.post(
        "/api/v1/crime/batches", files={"file": ("mps.csv", crime_file(), "text/csv")}
    ).json()
    url = f"/api/v1/crime/batches/{batch['batch_id']}"
    assert [r["trigger"] for r in hub.get(f"{url}/runs").json()] == ["auto"]
    assert len(hub.get(f"{url}/matches", params={"review_state": "unreviewed"}).json()) == 1
    assert hub.get(f"{url}/matches", params={"review_state": "qualified"}).json() == []
    assert hub.get(f"{url}/matches", params={"review_state": "maybe"}).status_code == 422
    match_id = hub.get(f"{url}/matches").json()[0]["match_id"]
    hub.post(
        f"/api/v1/crime/matches/{match_id}/review",
        json={"decision": "qualified", "reason": "Passed the door"},
    )
    qualified = hub.get(f"{url}/matches", params={"review_state": "qualified"}).json()
    assert [m["reviewed_by"] for m in qualified] == ["caseworker"]
    pack = hub.get(f"/api/v1/crime/matches/{match_id}/evidence.docx")
    assert pack.status_code == 200 and pack.content.startswith(b"PK")
    assert "crime-match-" in pack.headers["content-disposition"]
    assert hub.get(f"/api/v1/crime/matches/{match_id}/evidence.txt").status_code == 404
