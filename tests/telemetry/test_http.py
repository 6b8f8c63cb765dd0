"""The HTTP channel and the quarantine and unallocated routes, through the app."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session
from telemetry_records import fix, status

from tagwatch.access.permissions import get_principal
from tagwatch.access.principal import Principal
from tagwatch.app import create_app
from tagwatch.db.engine import make_engine, make_sessionmaker
from tagwatch.db.metadata import load_metadata
from tagwatch.settings import Settings
from tagwatch.telemetry.models import GpsFix

URL = "/api/v1/telemetry"


def gateway(*permissions: str) -> Principal:
    return Principal(
        user_id=None,
        username="gateway-1",
        display_name="Gateway",
        roles=frozenset({"device_gateway"}),
        permissions=frozenset(permissions),
    )


def test_a_json_array_is_stored_and_answered(client: TestClient, db: Session) -> None:
    records = [fix("GPS-H1", 0, seq=1), fix("GPS-H1", 1, seq=2), {"device": "GPS-H1"}]
    answer = client.post(URL, content=orjson.dumps(records))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert {k: body[k] for k in ("received", "accepted", "duplicate", "rejected")} == {
        "received": 3,
        "accepted": 2,
        "duplicate": 0,
        "rejected": 1,
    }
    (rejection,) = body["rejections"]
    assert rejection["position"] == 2
    assert {e["field"] for e in rejection["errors"]} == {"type", "time"}
    count = db.scalar(select(func.count()).where(GpsFix.device_serial == "GPS-H1"))
    assert count == 2

    again = client.post(URL, content=orjson.dumps(records[:2])).json()
    assert (again["accepted"], again["duplicate"]) == (0, 2)


def test_ndjson_records_are_numbered_by_line(client: TestClient) -> None:
    body = b"\n".join(
        [
            orjson.dumps(fix("GPS-H2", 0)),
            b"",
            orjson.dumps(status("GPS-H2", 1, strap="cut")),
            orjson.dumps(status("GPS-H2", 2)),
        ]
    )
    answer = client.post(URL, content=body, headers={"content-type": "application/x-ndjson"})
    data = answer.json()
    assert (data["accepted"], data["rejected"], data["unallocated"]) == (2, 1, 2)
    assert data["rejections"][0]["position"] == 3
    assert data["rejections"][0]["errors"] == [
        {"field": "strap", "reason": "must be one of ok, open"}
    ]


def test_sending_needs_the_ingest_permission(make_client: Callable[..., TestClient]) -> None:
    body = orjson.dumps([fix("GPS-H3", 0)])
    assert make_client(gateway("telemetry:quarantine")).post(URL, content=body).status_code == 403
    allowed = make_client(gateway("telemetry:ingest")).post(URL, content=body)
    assert allowed.status_code == 200 and allowed.json()["accepted"] == 1
    assert make_client(gateway("telemetry:ingest")).get(f"{URL}/quarantine").status_code == 403


def test_quarantine_list_and_replay(client: TestClient) -> None:
    bad = status("GPS-H4", 1, battery_pct=-4)
    posted = client.post(URL, content=orjson.dumps([bad])).json()
    quarantine_id = posted["rejections"][0]["quarantine_id"]

    listed = client.get(f"{URL}/quarantine").json()
    entry = next(e for e in listed if e["id"] == quarantine_id)
    assert entry["errors"] == [{"field": "battery_pct", "reason": "must be between 0 and 100"}]
    assert orjson.loads(entry["raw_text"]) == bad

    as_is = client.post(f"{URL}/quarantine/{quarantine_id}/replay").json()
    assert as_is["released"] == [] and as_is["still_rejected"][0]["quarantine_id"] == quarantine_id

    corrected = orjson.dumps({**bad, "battery_pct": 4}).decode()
    fixed = client.post(
        f"{URL}/quarantine/{quarantine_id}/replay", json={"corrected_text": corrected}
    ).json()
    assert fixed["released"] == [quarantine_id] and fixed["accepted"] == 1
    assert client.post(f"{URL}/quarantine/{quarantine_id}/replay").status_code == 409
    assert client.post(f"{URL}/quarantine/999999999/replay").status_code == 404
    released = client.get(f"{URL}/quarantine", params={"status": "released"}).json()
    assert quarantine_id in {e["id"] for e in released}


def test_replay_all_through_the_api(client: TestClient) -> None:
    client.post(URL, content=orjson.dumps([status("GPS-H5", 1, case="dented")]))
    answer = client.post(f"{URL}/quarantine/replay", json={}).json()
    assert answer["released"] == [] and len(answer["still_rejected"]) >= 1


def test_unallocated_devices_are_listed(client: TestClient) -> None:
    client.post(URL, content=orjson.dumps([fix("GPS-H6", 0), fix("GPS-H6", 1)]))
    listed = {e["device_serial"]: e for e in client.get(f"{URL}/unallocated").json()}
    assert listed["GPS-H6"]["fixes"] == 2 and listed["GPS-H6"]["records"] == 2


def test_an_http_acknowledgement_is_synced_to_disk_on_sqlite(
    tmp_path: Path, settings: Settings
) -> None:
    """The commit behind an answer syncs SQLite's log (FULL), so a power cut cannot undo it."""
    engine = make_engine(f"sqlite:///{tmp_path / 'durable.db'}")
    load_metadata().create_all(engine)
    levels: list[str] = []
    event.listen(engine, "begin", lambda conn: levels.append(conn.connection.info["synchronous"]))
    app = create_app(settings, engine=engine)
    app.state.sessionmaker = make_sessionmaker(engine, settings)
    app.dependency_overrides[get_principal] = lambda: gateway("telemetry:ingest")
    with TestClient(app) as client:
        levels.clear()
        answer = client.post(URL, content=orjson.dumps([fix("GPS-D1", 0, seq=1)]))
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1
    assert levels and set(levels) == {"FULL"}
    engine.dispose()
