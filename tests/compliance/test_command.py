"""`tagwatch compliance evaluate` re-derives violations, and doing it twice changes nothing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from compliance_cases import HOME_BNG, feed, gps, make_case
from typer.testing import CliRunner

from tagwatch.cli import app
from tagwatch.compliance import service
from tagwatch.compliance.models import Violation
from tagwatch.db.engine import make_engine, make_sessionmaker, unit_of_work
from tagwatch.db.metadata import load_metadata

UTC = dt.UTC


def test_evaluate_command_rederives_and_is_idempotent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("TAGWATCH_DATABASE_URL", url)
    engine = make_engine(url)
    load_metadata().create_all(engine)
    factory = make_sessionmaker(engine)
    fitted = dt.datetime(2026, 3, 20, 12, tzinfo=UTC)
    away = (HOME_BNG[0] + 400, HOME_BNG[1] + 300)
    with unit_of_work(factory) as session:
        case = make_case(session, fitted, removed_at=fitted + dt.timedelta(days=1))
        records = [
            gps(case.serial, fitted + dt.timedelta(hours=7, minutes=m), *away) for m in range(30)
        ]
        feed(session, records, fitted + dt.timedelta(hours=8))
    with unit_of_work(factory) as session:
        session.query(Violation).delete()  # as if derived with another rule set
    runner = CliRunner()
    to = "2026-03-21T12:00:00+00:00"
    first = runner.invoke(
        app, ["compliance", "evaluate", "--allocation", str(case.allocation_id), "--to", to]
    )
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["opened"] > 0 and summary["allocations"] == 1
    with unit_of_work(factory) as session:
        found = {v.rule_id for v in service.standing(session, case.allocation_id)}
    assert "curfew.absence.gps" in found
    second = runner.invoke(app, ["compliance", "evaluate", "--to", to])
    assert second.exit_code == 0, second.output
    again = json.loads(second.stdout.strip().splitlines()[-1])
    assert (again["opened"], again["updated"], again["closed"]) == (0, 0, 0)
    bad = runner.invoke(app, ["compliance", "evaluate", "--to", "yesterday"])
    assert bad.exit_code != 0
    engine.dispose()
