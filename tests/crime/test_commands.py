"""`tagwatch crimes` against a real SQLite store of its own."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from crime_scene import SCENE, T0
from typer.testing import CliRunner

from tagwatch.cli import app
from tagwatch.db.engine import make_engine
from tagwatch.db.metadata import load_metadata


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    load_metadata().create_all(engine)
    engine.dispose()
    monkeypatch.setenv("TAGWATCH_DATABASE_URL", url)
    return tmp_path


def test_import_then_export_matches(store: Path) -> None:
    crimes = store / "mps.csv"
    crimes.write_text(
        f"MPS,RB,Robbery,MPS20260302,01/1/26,{T0:%Y%m%d%H%M%S},{T0:%Y%m%d%H%M%S},"
        f"{SCENE[0]:.0f},{SCENE[1]:.0f},,,,\n"
        "MPS,ZZ,x,MPS20260302,01/2/26,20260302100000,20260302110000,1,1,,,,\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    result = runner.invoke(app, ["crimes", "import", str(crimes), "--force", "MPS"])
    assert result.exit_code == 0, result.output
    assert "partial" in result.output and "1 of 2 rows accepted" in result.output
    out = store / "matches.csv"
    result = runner.invoke(app, ["crimes", "match", "--batch", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    header = next(csv.reader(out.open(encoding="utf-8")))
    assert header[:3] == ["batch_id", "force", "crime_ref"] and len(header) == 14
    missing = runner.invoke(app, ["crimes", "match", "--batch", "99", "--out", str(out)])
    assert missing.exit_code == 1
    where = runner.invoke(app, ["crimes", "where", "--person", "X", "--crime", "01/1/26"])
    assert where.exit_code == 1 and "person X" in where.output
