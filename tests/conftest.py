"""Shared fixtures: a real database (SQLite by default, PostgreSQL when asked), the app, clients.

TAGWATCH_TEST_DATABASE_URL picks the backend the suite runs on (default: a fresh SQLite file).
TAGWATCH_TEST_POSTGRES_URL names a PostgreSQL for the tests that need PostgreSQL itself.
Under CI (CI=true) a skipped test is a failed test: everything must run there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session, sessionmaker

from tagwatch.access.permissions import PERMISSIONS, get_principal
from tagwatch.access.principal import Principal
from tagwatch.app import create_app
from tagwatch.db.engine import make_engine
from tagwatch.db.metadata import load_metadata
from tagwatch.settings import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
# Fixtures through which a test reaches the backend under test (directly or, for the browser
# tests' live server, through its own engine on the same backend). Tests using none of them
# are marked backend_independent and run once, not once per backend.
DATABASE_FIXTURES = {
    "db",
    "db_connection",
    "engine",
    "app",
    "client",
    "make_client",
    "server_engine",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not DATABASE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.backend_independent)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, where every test must run: {report.longrepr}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("TAGWATCH_TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        var_dir=tmp_path_factory.mktemp("var"),
        secret_key="test-secret",
        log_json=True,
        run_periodic_tasks=False,
    )


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.resolved_database_url)
    metadata = load_metadata()
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    else:
        metadata.drop_all(engine)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def db_connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    connection = engine.connect()
    transaction = connection.begin()
    try:
        yield connection
    finally:
        transaction.rollback()
        connection.close()


@pytest.fixture
def session_factory(db_connection: Connection, settings: Settings) -> sessionmaker[Session]:
    # Commits inside the code under test release SAVEPOINTs; the outer transaction rolls back.
    return sessionmaker(
        bind=db_connection,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
        info={"settings": settings},
    )


@pytest.fixture
def db(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    session = session_factory()
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def app(settings: Settings, engine: Engine, session_factory: sessionmaker[Session]) -> FastAPI:
    application = create_app(settings, engine=engine)
    application.state.sessionmaker = session_factory
    return application


def principal_with(
    permissions: set[str] | frozenset[str] | None = None,
    roles: frozenset[str] = frozenset({"test"}),
    **scope: object,
) -> Principal:
    """A caller with the given permissions (all of them when None) and scope."""
    granted = frozenset(PERMISSIONS) if permissions is None else frozenset(permissions)
    return Principal(
        user_id=scope.pop("user_id", None),  # type: ignore[arg-type]
        username=str(scope.pop("username", "tester")),
        display_name=str(scope.pop("display_name", "Test User")),
        roles=roles,
        permissions=granted,
        **scope,  # type: ignore[arg-type]
    )


@pytest.fixture
def make_client(app: FastAPI) -> Callable[..., TestClient]:
    """A client acting as a caller with the given permissions (all when None)."""

    def build(principal: Principal | None = None) -> TestClient:
        caller = principal or principal_with()
        app.dependency_overrides[get_principal] = lambda: caller
        return TestClient(app)

    return build


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("TAGWATCH_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("TAGWATCH_TEST_POSTGRES_URL is not set (needs a PostgreSQL server)")
    return url


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
