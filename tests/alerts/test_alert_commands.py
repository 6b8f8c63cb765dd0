"""`tagwatch alerts overdue` and `tagwatch alerts latency` against a database of their own."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tagwatch.alerts import service
from tagwatch.alerts.commands import alerts_app
from tagwatch.alerts.models import AlertKind
from tagwatch.alerts.sources import AlertSource
from tagwatch.db.base import utcnow
from tagwatch.db.engine import make_engine, make_sessionmaker, unit_of_work
from tagwatch.db.metadata import load_metadata
from tagwatch.settings import Settings


def _source(order_id: int, at: dt.datetime) -> AlertSource:
    return AlertSource(
        kind=AlertKind.AWAITING_FITTING,
        subject_key=f"awaiting_fitting:{order_id}",
        violation_type="awaiting_fitting",
        severity="high",
        summary=f"Order {order_id} is still awaiting fitting",
        needs_tamper_review=False,
        event_at=at,
        received_at=at,
        evaluated_at=at,
        order_id=order_id,
        responsible_officer="a.officer",
        delivery_unit_code="N07-LDN",
    )


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("TAGWATCH_DATABASE_URL", url)
    engine = make_engine(url)
    load_metadata().create_all(engine)
    now = utcnow()
    settings = Settings(database_url=url, outcome_deadline_hours=24)
    with unit_of_work(make_sessionmaker(engine)) as session:
        service.raise_alert(
            session,
            _source(1, now - dt.timedelta(hours=30)),
            settings=settings,
            now=now - dt.timedelta(hours=30),
        )
        service.raise_alert(session, _source(2, now), settings=settings, now=now)
    engine.dispose()
    return url


def test_overdue_lists_only_alerts_past_their_deadline(database: str) -> None:
    result = CliRunner().invoke(alerts_app, ["overdue", "--json"])
    assert result.exit_code == 1, result.output  # non-zero: there is something to chase
    rows = [json.loads(line) for line in result.output.splitlines() if line.strip()]
    assert [row["order_id"] for row in rows] == [1]
    assert rows[0]["status"] == "open"


def test_overdue_table_and_latency(database: str) -> None:
    table = CliRunner().invoke(alerts_app, ["overdue"])
    assert "1 alert(s) past their outcome deadline" in table.output
    latency = CliRunner().invoke(alerts_app, ["latency"])
    assert latency.exit_code == 0
    # Latency covers violation alerts only; these are fitting alerts.
    assert json.loads(latency.output)["raised_to_notified"]["count"] == 0
