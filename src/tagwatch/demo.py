"""The embedded demo: a fresh SQLite store with a cohort, its recent telemetry, and live data.

`tagwatch demo` (run by `make demo`) migrates the store, seeds reference data and one account
per role, loads a synthetic cohort with the last days of its telemetry through the real
import and ingestion paths (so violations and alerts are derived exactly as in production),
then serves the portal and keeps the simulator feeding the server in real time.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select

from tagwatch.db.engine import make_engine, make_sessionmaker, unit_of_work
from tagwatch.db.migrate import upgrade
from tagwatch.settings import Settings

console = Console()
DEVICE_GATEWAY = "gateway1"


@dataclass(frozen=True)
class DemoOptions:
    people: int = 500
    days: float = 2.0
    seed: int = 2026
    host: str = "127.0.0.1"
    port: int = 8000
    live: bool = True
    serve: bool = True
    reset: bool = True


def run_demo(options: DemoOptions, settings: Settings | None = None) -> None:
    settings = settings or Settings()
    if options.reset and settings.is_sqlite:
        _remove_sqlite_files(settings)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    factory = make_sessionmaker(engine, settings)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    history_start = now - dt.timedelta(days=options.days)

    accounts, token, cohort = _load(factory, options, history_start)
    feed_path = settings.var_dir / "demo-feed.ndjson.gz"
    _ingest_history(factory, settings, cohort, history_start, options, feed_path)
    _print_accounts(accounts, options)
    if not options.serve:
        engine.dispose()
        return
    if options.live:
        threading.Thread(
            target=_feed_live,
            args=(cohort, options, token, history_start, now),
            name="demo-live",
            daemon=True,
        ).start()
    import uvicorn

    from tagwatch.app import create_app

    uvicorn.run(create_app(settings, engine=engine), host=options.host, port=options.port)


def _remove_sqlite_files(settings: Settings) -> None:
    database = Path(settings.resolved_database_url.split("///", 1)[-1])
    for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        path.unlink(missing_ok=True)


def _load(factory, options: DemoOptions, history_start: dt.datetime):  # type: ignore[no-untyped-def]
    from tagwatch.access.demo import seed_demo_users
    from tagwatch.access.models import User
    from tagwatch.access.service import create_token
    from tagwatch.cases.orderfile import import_document
    from tagwatch.cases.refdata import seed_reference_data
    from tagwatch.simulate.cohort import generate_cohort

    with console.status("Creating reference data, accounts and the cohort"):
        cohort = generate_cohort(options.people, options.seed, history_start.date())
        with unit_of_work(factory) as session:
            seed_reference_data(session)
            accounts = seed_demo_users(session)
            gateway = session.scalars(select(User).where(User.username == DEVICE_GATEWAY)).one()
            token = create_token(session, gateway, "demo simulator", ["telemetry:ingest"]).secret
        with unit_of_work(factory) as session:
            result = import_document(session, cohort)
    console.print(f"Loaded {options.people} people: {result}")
    return accounts, token, cohort


def _ingest_history(  # type: ignore[no-untyped-def]
    factory, settings: Settings, cohort, start: dt.datetime, options: DemoOptions, path: Path
) -> None:
    from tagwatch.simulate.devices import simulate_feed
    from tagwatch.simulate.writers import write_ndjson
    from tagwatch.telemetry.files import store_file

    path.parent.mkdir(parents=True, exist_ok=True)
    with console.status(f"Simulating {options.days:g} days of telemetry"):
        written = write_ndjson(simulate_feed(cohort, start, options.days, options.seed), path)
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[counts]}"))
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("Ingesting", total=path.stat().st_size, counts="")
        with unit_of_work(factory) as session:
            total = store_file(
                session,
                path,
                settings=settings,
                on_chunk=lambda result, consumed: progress.update(
                    task, completed=consumed, counts=str(result.counts())
                ),
            )
    console.print(f"Ingested {written} simulated records: {total.counts()}")


def _print_accounts(accounts: list[tuple[str, str, str]], options: DemoOptions) -> None:
    table = Table(title="Demo accounts (demo data only)")
    for column in ("username", "password", "role"):
        table.add_column(column)
    for username, password, role in accounts:
        table.add_row(username, password, role)
    console.print(table)
    console.print(
        f"Open http://{options.host}:{options.port}/ and sign in with an account above"
        " (officer1 is a probation practitioner). Press Ctrl+C to stop."
    )


def _feed_live(  # type: ignore[no-untyped-def]
    cohort, options: DemoOptions, token: str, history_start: dt.datetime, now: dt.datetime
) -> None:
    from tagwatch.simulate.live import feed_live

    base_url = f"http://{options.host}:{options.port}"
    for _ in range(120):  # wait for the server to accept connections
        try:
            httpx.get(f"{base_url}/healthz", timeout=1.0)
            break
        except httpx.HTTPError:
            time.sleep(0.5)
    try:
        # The same simulation run as the history, carried on from now: sequence numbers continue.
        feed_live(
            cohort,
            base_url,
            token,
            start=history_start,
            resume_at=now,
            days=options.days + 1.0,
            seed=options.seed,
        )
    except Exception as error:  # the demo server keeps running without live data
        console.print(f"[yellow]Live feed stopped: {error}[/yellow]")
