"""The `tagwatch` command. Each domain adds its own commands through `<domain>/commands.py`."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from sqlalchemy.orm import Session

from tagwatch.db.engine import make_engine, make_sessionmaker, unit_of_work
from tagwatch.domains import domain_modules
from tagwatch.settings import Settings

console = Console(stderr=True)
app = typer.Typer(help="tagwatch: electronic monitoring platform", no_args_is_help=True)
db_app = typer.Typer(help="The store", no_args_is_help=True)
app.add_typer(db_app, name="db")


@contextmanager
def cli_session(settings: Settings | None = None) -> Iterator[Session]:
    """One transaction for one CLI command, committed when the command succeeds."""
    settings = settings or Settings()
    engine = make_engine(settings.resolved_database_url)
    try:
        with unit_of_work(make_sessionmaker(engine, settings)) as session:
            yield session
    finally:
        engine.dispose()


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Create or migrate the database to the latest schema."""
    from tagwatch.db.migrate import upgrade

    settings = Settings()
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine, revision)
    engine.dispose()
    console.print(f"[green]Database at {revision}[/green]: {engine.url.render_as_string()}")


@app.command("serve")
def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = typer.Option(1, help="worker processes: one per core in production"),
    access_log: bool = True,
    log_level: str = "info",
    reload: bool = False,
) -> None:
    """Run the web server (pages and JSON API)."""
    import uvicorn

    from tagwatch.background import Scheduler
    from tagwatch.logging import configure_logging
    from tagwatch.web.keepalive import LOADS_ENV

    # Python runs one thread at a time per process, so a server uses as many cores as it has
    # worker processes. The workers only serve requests; the clock-driven tasks run once,
    # here in the supervising process, not once per worker.
    scheduler = None
    if workers > 1:
        settings = Settings()
        if settings.run_periodic_tasks:
            configure_logging(json=settings.log_json)
            engine = make_engine(settings.resolved_database_url)
            scheduler = Scheduler(make_sessionmaker(engine, settings))
            scheduler.start()
        os.environ["TAGWATCH_RUN_PERIODIC_TASKS"] = "false"  # the workers inherit it
        # The workers share their loads here, to shed connections when busier (`keepalive`).
        loads = Path(tempfile.mkdtemp(prefix="tagwatch-serve-")) / "worker-loads"
        os.environ[LOADS_ENV] = str(loads)
    try:
        uvicorn.run(
            "tagwatch.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=access_log,
            log_level=log_level,
            reload=reload,
        )
    finally:
        if scheduler is not None:
            scheduler.stop()
        if workers > 1:
            shutil.rmtree(loads.parent, ignore_errors=True)


@app.command("tick")
def tick() -> None:
    """Run every periodic task once (clock-driven rules, escalation, deadlines)."""
    from tagwatch.background import run_all_once

    settings = Settings()
    engine = make_engine(settings.resolved_database_url)
    results = run_all_once(make_sessionmaker(engine, settings))
    engine.dispose()
    for name, result in results.items():
        console.print(f"{name}: {result}")


@app.command("demo")
def demo(
    people: int = typer.Option(500, min=1, help="people in the synthetic cohort"),
    days: float = typer.Option(2.0, min=0.0, help="days of telemetry history to load"),
    seed: int = typer.Option(2026),
    host: str = "127.0.0.1",
    port: int = 8000,
    live: bool = typer.Option(True, help="keep the simulator feeding the server"),
    serve: bool = typer.Option(True, help="start the server after loading"),
) -> None:
    """Create a fresh SQLite store, load a demo cohort and its telemetry, and serve it."""
    from tagwatch.demo import DemoOptions, run_demo

    run_demo(DemoOptions(people, days, seed, host, port, live, serve))


def _register_domain_commands() -> None:
    for module in domain_modules("commands"):
        module.register(app)


_register_domain_commands()


def main() -> None:
    app()
