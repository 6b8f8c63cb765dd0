"""The users, tokens and audit commands against a store of their own."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

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


def test_users_tokens_and_audit_from_the_command_line(store: str) -> None:
    runner = CliRunner()
    created = runner.invoke(
        app,
        [
            "users",
            "create",
            "--username",
            "gw",
            "--role",
            "device_gateway",
            "--team",
            "Gateways",
            "--password",
            "a long enough password",
        ],
    )
    assert created.exit_code == 0, created.output
    duplicate = runner.invoke(
        app, ["users", "create", "--username", "gw", "--role", "analyst", "--password", ""]
    )
    assert duplicate.exit_code == 1 and "already taken" in duplicate.output
    listed = runner.invoke(app, ["users", "list"])
    assert "gw" in listed.output and "device_gateway" in listed.output
    token = runner.invoke(app, ["tokens", "create", "--user", "gw", "--scope", "telemetry:ingest"])
    assert token.exit_code == 0, token.output
    assert "tw_" in token.stdout
    beyond = runner.invoke(app, ["tokens", "create", "--user", "gw", "--scope", "audit:read"])
    assert beyond.exit_code == 1 and "does not hold audit:read" in beyond.output
    assert runner.invoke(app, ["tokens", "revoke", "1"]).exit_code == 0
    intact = runner.invoke(app, ["audit", "verify"])
    assert intact.exit_code == 0 and "intact: 3 entries" in intact.output
    found = runner.invoke(app, ["audit", "search", "--action", "token.create"])
    assert found.exit_code == 0 and '"subject_id": "1"' in found.stdout

    engine = make_engine(store)
    with engine.begin() as connection:
        connection.execute(text("DROP TRIGGER audit_entry_no_update"))
        connection.execute(text("UPDATE audit_entry SET purpose = 'edited' WHERE id = 2"))
    engine.dispose()
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1 and "broken at entry 2" in broken.output


def test_seed_demo_users_creates_every_role_once(store: str) -> None:
    from tagwatch.access.demo import seed_demo_users
    from tagwatch.access.repository import list_users
    from tagwatch.access.roles import ROLES
    from tagwatch.cli import cli_session

    with cli_session() as session:
        first = seed_demo_users(session)
    with cli_session() as session:
        again = seed_demo_users(session)
        users = {u.username: u for u in list_users(session)}
    assert first == again and len(users) == len(first)
    assert {f"officer{i}" for i in range(1, 13)} <= set(users)
    assert {r for u in users.values() for r in u.roles} == set(ROLES)
    assert users["police1"].force_code == "MPS"
    officers = [users[f"officer{i}"] for i in range(1, 13)]
    assert all(o.team_id and o.delivery_unit_code for o in officers)
    managers = [u for u in users.values() if u.roles == ["probation_manager"]]
    assert {m.delivery_unit_code for m in managers} == {o.delivery_unit_code for o in officers}
