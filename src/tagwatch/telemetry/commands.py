"""CLI: `tagwatch ingest FILE`, `tagwatch ingest-mqtt`, `tagwatch quarantine list|replay`."""

from __future__ import annotations

import datetime as dt
import signal
import threading
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

console = Console(stderr=True)
quarantine_app = typer.Typer(help="Records refused by validation", no_args_is_help=True)

SHOWN_REJECTIONS = 20


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_file)
    app.command("ingest-mqtt")(ingest_mqtt)
    app.add_typer(quarantine_app, name="quarantine")


def ingest_file(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="NDJSON or CSV, .gz too"),
    chunk: int | None = typer.Option(
        None, min=1, help="records stored and committed together [default: 100,000]"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the answer as JSON on stdout"),
) -> None:
    """Store a feed file (NDJSON, or the GPS CSV form) through the pipeline.

    Each chunk is committed as it is stored, so a large file shows durable progress; storing
    is idempotent, so after a failure run the same command again.
    """
    from tagwatch.cli import cli_session
    from tagwatch.settings import Settings
    from tagwatch.telemetry.files import DEFAULT_CHUNK, store_file

    settings = Settings()
    size = path.stat().st_size
    with (
        cli_session(settings) as session,
        Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[records]} records"),
            TimeRemainingColumn(),
            console=console,
            disable=as_json,
        ) as progress,
    ):
        task = progress.add_task(f"Storing {path.name}", total=size, records=0)
        total = store_file(
            session,
            path,
            settings=settings,
            chunk=chunk or DEFAULT_CHUNK,
            on_chunk=lambda so_far, consumed: progress.update(
                task, completed=consumed, records=so_far.received
            ),
        )
        progress.update(task, completed=size)
    _print_answer(total.as_dict(), as_json)


def _print_answer(answer: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(orjson.dumps(answer).decode())
        return
    names = ("received", "accepted", "duplicate", "rejected", "unallocated", "implausible")
    table = Table(*names)
    table.add_row(*(str(answer[name]) for name in names))
    console.print(table)
    rejections = answer["rejections"]
    for rejection in rejections[:SHOWN_REJECTIONS]:
        reasons = "; ".join(f"{e['field']}: {e['reason']}" for e in rejection["errors"])
        console.print(
            f"[red]rejected[/red] at {rejection['position']}"
            f" (quarantine {rejection['quarantine_id']}): {reasons}"
        )
    if len(rejections) > SHOWN_REJECTIONS:
        console.print(
            f"... and {len(rejections) - SHOWN_REJECTIONS} more: `tagwatch quarantine list`"
        )


def ingest_mqtt(
    url: str | None = typer.Option(None, help="broker, mqtt://host:port (default: settings)"),
    topic: str | None = typer.Option(None, help="topic filter (default tagwatch/v1/devices/+/+)"),
    client_id: str | None = typer.Option(None, help="persistent session id"),
) -> None:
    """Subscribe to the device topics and store what arrives, until stopped (Ctrl-C)."""
    from tagwatch.db.engine import make_engine, make_sessionmaker
    from tagwatch.settings import Settings
    from tagwatch.telemetry.mqtt import DEFAULT_CLIENT_ID, DEFAULT_TOPIC, MqttIngestor

    settings = Settings()
    engine = make_engine(settings.resolved_database_url)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    def report(result: Any) -> None:
        console.print(
            f"stored {result.accepted}, duplicate {result.duplicate}, rejected {result.rejected}"
        )

    ingestor = MqttIngestor(
        make_sessionmaker(engine),
        settings,
        url=url or settings.mqtt_url,
        topic=topic or DEFAULT_TOPIC,
        client_id=client_id or DEFAULT_CLIENT_ID,
        on_batch=report,
    )
    console.print(f"Listening on {url or settings.mqtt_url} for {topic or DEFAULT_TOPIC}")
    try:
        ingestor.run(stop)
    finally:
        engine.dispose()


@quarantine_app.command("list")
def quarantine_list(
    status: str = typer.Option("quarantined", help="quarantined, released or all"),
    limit: int = typer.Option(50, min=1),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Records refused by validation, newest first, with their errors."""
    from tagwatch.access.audit import record as audit
    from tagwatch.cli import cli_session
    from tagwatch.telemetry import repository

    if status not in ("quarantined", "released", "all"):
        raise typer.BadParameter("use quarantined, released or all", param_hint="--status")
    with cli_session() as session:
        rows = repository.list_quarantined(
            session, status=None if status == "all" else status, limit=limit
        )
        audit(
            session,
            None,
            "telemetry.quarantine.list",
            subject_type="quarantined_record",
            purpose="command line",
            detail={"status": status, "ids": [row.id for row in rows]},
        )
        listed: list[dict[str, Any]] = [
            {
                "id": row.id,
                "status": row.status,
                "channel": row.channel,
                "position": row.position,
                "received_at": row.received_at.isoformat(),
                "errors": row.errors,
                "raw_text": row.raw_text,
            }
            for row in rows
        ]
    if as_json:
        typer.echo(orjson.dumps(listed).decode())
        return
    table = Table("id", "status", "channel", "position", "errors", "raw")
    for row in listed:
        errors = "; ".join(f"{e['field']}: {e['reason']}" for e in row["errors"])
        table.add_row(
            str(row["id"]),
            row["status"],
            row["channel"],
            str(row["position"]),
            errors,
            row["raw_text"][:80],
        )
    console.print(table)


@quarantine_app.command("replay")
def quarantine_replay(
    ids: list[int] = typer.Option(None, "--id", help="a quarantined record (repeat); default all"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Validate quarantined records again; those that now pass are stored and released."""
    from tagwatch.access.audit import record as audit
    from tagwatch.cli import cli_session
    from tagwatch.settings import Settings
    from tagwatch.telemetry.service import replay_quarantined

    settings = Settings()
    with cli_session(settings) as session:
        result = replay_quarantined(
            session,
            ids=ids or None,
            settings=settings,
            received_at=dt.datetime.now(dt.UTC),
        )
        audit(
            session,
            None,
            "telemetry.quarantine.replay",
            subject_type="quarantined_record",
            purpose="command line",
            detail={"ids": ids or None, "released": result.released},
        )
    answer = result.as_dict()
    if as_json:
        typer.echo(orjson.dumps(answer).decode())
        return
    console.print(
        f"released {len(result.released)}, still rejected {len(result.still_rejected)}"
        f" (accepted {answer['accepted']}, duplicate {answer['duplicate']})"
    )
    for item in answer["still_rejected"]:
        reasons = "; ".join(f"{e['field']}: {e['reason']}" for e in item["errors"])
        console.print(f"[red]still rejected[/red] {item['quarantine_id']}: {reasons}")
