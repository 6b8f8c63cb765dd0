"""`tagwatch data-requests turnaround` and `expire` against a database of their own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tagwatch.db.engine import make_engine
from tagwatch.db.metadata import load_metadata
from tagwatch.requests.commands import requests_app


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("TAGWATCH_DATABASE_URL", url)
    engine = make_engine(url)
    load_metadata().create_all(engine)
    engine.dispose()


def test_turnaround_prints_one_json_object_and_names_bad_times(database: None) -> None:
    runner = CliRunner()
    ok = runner.invoke(
        requests_app, ["turnaround", "--from", "2026-11-01T00:00Z", "--to", "2026-12-01T00:00Z"]
    )
    assert ok.exit_code == 0, ok.output
    figures = json.loads(ok.output)
    assert figures["requests"] == 0 and figures["approval_to_files"]["median_s"] is None
    naive = runner.invoke(
        requests_app, ["turnaround", "--from", "2026-11-01T00:00", "--to", "2026-12-01T00:00Z"]
    )
    assert naive.exit_code != 0 and "from" in naive.output
    expired = runner.invoke(requests_app, ["expire"])
    assert expired.exit_code == 0 and "0 request(s) expired" in expired.output
