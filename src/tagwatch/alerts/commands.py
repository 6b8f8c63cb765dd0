"""`tagwatch alerts ...`: the overdue report and alert latency, for cron and managers."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from tagwatch.london import london_time

alerts_app = typer.Typer(help="Alerts and the enforcement loop", no_args_is_help=True)


@alerts_app.command("overdue")
def overdue(
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
) -> None:
    """Alerts with no outcome recorded past their outcome deadline (exit status 1 if any)."""
    from tagwatch.alerts import service
    from tagwatch.alerts.schemas import AlertOut
    from tagwatch.cli import cli_session
    from tagwatch.db.base import utcnow

    with cli_session() as session:
        alerts = [AlertOut.model_validate(a) for a in service.overdue(session, None, utcnow())]
    if as_json:
        for alert in alerts:
            typer.echo(alert.model_dump_json())
    else:
        table = Table(title=f"{len(alerts)} alert(s) past their outcome deadline")
        for column in ("Alert", "Type", "Officer", "Unit", "Raised", "Due", "Status"):
            table.add_column(column)
        for alert in alerts:
            table.add_row(
                str(alert.id),
                alert.violation_type,
                alert.responsible_officer or "-",
                alert.delivery_unit_code or "-",
                london_time(alert.raised_at),
                london_time(alert.outcome_due_at),
                alert.status + (" (escalated)" if alert.escalated_at else ""),
            )
        Console().print(table)
    if alerts:
        raise typer.Exit(1)


@alerts_app.command("latency")
def latency() -> None:
    """p50 and p95 seconds of each stage from event to acknowledgement, as JSON."""
    from tagwatch.alerts import service
    from tagwatch.cli import cli_session

    with cli_session() as session:
        figures = service.latency(session)
    typer.echo(json.dumps({stage: vars(f) for stage, f in figures.items()}, indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
