"""The daily export on the clock, and the `tagwatch analytics` commands."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from analytics_cases import DAY, START, build_cohort
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from tagwatch.access.models import AuditEntry
from tagwatch.analytics.commands import analytics_app
from tagwatch.analytics.export import export_day, manifest_path, read_manifest
from tagwatch.analytics.periodic import export_previous_day
from tagwatch.background import all_tasks
from tagwatch.db.engine import make_engine, make_sessionmaker, unit_of_work
from tagwatch.db.metadata import load_metadata
from tagwatch.settings import Settings


@pytest.fixture
def own_var_db(db_connection: Connection, settings: Settings, tmp_path: Path) -> Iterator[Session]:
    """The test's database, with settings whose var folder is this test's own."""
    own = settings.model_copy(update={"var_dir": tmp_path})
    factory = sessionmaker(
        bind=db_connection,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
        info={"settings": own},
    )
    with factory() as session:
        yield session


def _audits(session: Session) -> int:
    return session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "analytics.export")
    )  # type: ignore[return-value]


def test_the_daily_export_is_a_periodic_task() -> None:
    assert "analytics.daily_export" in {task.name for task in all_tasks()}


def test_the_previous_day_is_exported_once_its_late_records_are_in(
    own_var_db: Session, settings: Settings, tmp_path: Path
) -> None:
    build_cohort(own_var_db, settings)
    out = tmp_path / "analytics"
    before_due = START + dt.timedelta(days=1, hours=1, minutes=59)

    assert export_previous_day(own_var_db, before_due).startswith("2026-11-21:")
    assert read_manifest(out, DAY) is None

    due = START + dt.timedelta(days=1, hours=2)
    done = export_previous_day(own_var_db, due)
    assert done.startswith("2026-11-22: fixes ")
    manifest = read_manifest(out, DAY)
    assert manifest is not None and manifest["generated_at"] == "2026-11-23T02:00:00.000+00:00"
    audited = _audits(own_var_db)

    assert export_previous_day(own_var_db, due + dt.timedelta(minutes=15)) == "2026-11-22: exported"
    assert _audits(own_var_db) == audited
    [entry] = own_var_db.scalars(
        select(AuditEntry).where(AuditEntry.subject_id == "2026-11-22")
    ).all()
    assert entry.detail["via"] == "periodic" and entry.username == "system"


def test_a_deployment_can_switch_the_daily_export_off(
    db_connection: Connection, settings: Settings, tmp_path: Path
) -> None:
    off = settings.model_copy(update={"var_dir": tmp_path, "analytics_daily_export": False})
    factory = sessionmaker(
        bind=db_connection, join_transaction_mode="create_savepoint", info={"settings": off}
    )
    with factory() as session:
        build_cohort(session, off)
        answer = export_previous_day(session, START + dt.timedelta(days=1, hours=3))
        assert "switched off" in answer
        assert read_manifest(tmp_path / "analytics", DAY) is None
        assert _audits(session) == 0


def test_an_early_export_is_done_again_when_the_day_is_due(
    own_var_db: Session, settings: Settings, tmp_path: Path
) -> None:
    build_cohort(own_var_db, settings)
    out = tmp_path / "analytics"
    export_day(own_var_db, DAY, out, now=START + dt.timedelta(days=1, minutes=30))
    manifest_path(out, DAY).write_text("not json")  # a damaged manifest is mended, too

    export_previous_day(own_var_db, START + dt.timedelta(days=1, hours=3))

    manifest = read_manifest(out, DAY)
    assert manifest is not None and manifest["generated_at"] == "2026-11-23T03:00:00.000+00:00"


@pytest.fixture
def cli_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A SQLite store of the CLI's own, holding the cohort; the var folder is the test's."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    var = tmp_path / "var"
    monkeypatch.setenv("TAGWATCH_DATABASE_URL", url)
    monkeypatch.setenv("TAGWATCH_VAR_DIR", str(var))
    engine = make_engine(url)
    load_metadata().create_all(engine)
    settings = Settings(database_url=url, var_dir=var)
    with unit_of_work(make_sessionmaker(engine, settings)) as session:
        build_cohort(session, settings)
    engine.dispose()
    return var


def test_the_export_command_writes_the_day_under_the_var_folder(cli_store: Path) -> None:
    result = CliRunner().invoke(analytics_app, ["export", "--day", "2026-11-22"])

    assert result.exit_code == 0, result.output
    # A 288 fixes, B 289 (one impossible), C 111 and the spare device 3.
    assert "Exported 2026-11-22" in result.output and "fixes 691" in result.output
    manifest = json.loads((cli_store / "analytics/manifests/day=2026-11-22.json").read_text())
    assert manifest["tables"]["fixes"]["rows"] == 691


def test_the_export_command_takes_another_folder(cli_store: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        analytics_app, ["export", "--day", "2026-11-22", "--out", str(tmp_path / "elsewhere")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "elsewhere/fixes/day=2026-11-22/part-0.parquet").is_file()
    assert not (cli_store / "analytics").exists()


@pytest.mark.parametrize(
    ("day", "reason"), [("22/11/2026", "not a date like"), ("2999-01-01", "has not begun")]
)
def test_the_export_command_refuses_a_bad_day(cli_store: Path, day: str, reason: str) -> None:
    result = CliRunner().invoke(analytics_app, ["export", "--day", day])
    assert result.exit_code != 0
    assert reason in " ".join(result.output.split())
    assert not (cli_store / "analytics").exists()


def test_gis_views_on_sqlite_say_they_need_postgis(cli_store: Path) -> None:
    result = CliRunner().invoke(analytics_app, ["gis-views"])
    assert result.exit_code == 1
    assert "need PostgreSQL with PostGIS" in " ".join(result.output.split())
