"""`tagwatch refdata seed` and `tagwatch orders import|export` against a store of their own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tagwatch.cases import samples
from tagwatch.cli import app
from tagwatch.db.engine import make_engine
from tagwatch.db.metadata import load_metadata


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    load_metadata().create_all(engine)
    engine.dispose()
    monkeypatch.setenv("TAGWATCH_DATABASE_URL", url)
    return url


def test_seed_import_export_from_the_command_line(store: str, tmp_path: Path) -> None:
    runner = CliRunner()
    seeded = runner.invoke(app, ["refdata", "seed"])
    assert seeded.exit_code == 0 and "value(s) added" in seeded.output
    assert "0 value(s) added" in runner.invoke(app, ["refdata", "seed"]).output

    good = tmp_path / "orders.json"
    good.write_text(json.dumps(samples.document(2)), encoding="utf-8")
    imported = runner.invoke(app, ["orders", "import", str(good)])
    assert imported.exit_code == 0, imported.output
    assert "people added 2" in imported.output

    out = tmp_path / "export.json"
    assert runner.invoke(app, ["orders", "export", "--out", str(out)]).exit_code == 0
    exported = json.loads(out.read_text(encoding="utf-8"))
    assert [p["ref"] for p in exported["people"]] == ["TW000001", "TW000002"]
    again = runner.invoke(app, ["orders", "import", str(out)])
    assert again.exit_code == 0 and "people added 0" in again.output

    bad_document = samples.document(3, first=10)
    bad_document["people"][1]["date_of_birth"] = "2999-01-01"
    bad_document["people"][2]["orders"][0]["conditions"][0]["timetable"][2]["end"] = "25:00"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(bad_document), encoding="utf-8")
    refused = runner.invoke(app, ["orders", "import", str(bad)])
    assert refused.exit_code == 1
    assert "people[1].date_of_birth: must be between 1900-01-01 and today" in refused.output
    assert (
        "people[2].orders[0].conditions[0].timetable[2].end: must be a time HH:MM" in refused.output
    )
    assert "Refused: 2 error(s)" in refused.output
    after = runner.invoke(app, ["orders", "export"])
    assert [p["ref"] for p in json.loads(after.stdout)["people"]] == ["TW000001", "TW000002"]
