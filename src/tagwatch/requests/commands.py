"""`tagwatch data-requests ...`: turnaround figures and expiry, for cron and reports."""

from __future__ import annotations

import datetime as dt

import typer

requests_app = typer.Typer(help="Location data requests", no_args_is_help=True)


def _moment(value: str, name: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as error:
        raise typer.BadParameter(f"{name}: must be an ISO 8601 date and time") from error
    if moment.tzinfo is None:
        raise typer.BadParameter(f"{name}: must carry a UTC offset, like 2026-11-01T00:00Z")
    return moment


@requests_app.command("turnaround")
def turnaround(
    start: str = typer.Option(..., "--from", help="requests made from (ISO 8601, with offset)"),
    end: str = typer.Option(..., "--to", help="requests made before (ISO 8601, with offset)"),
) -> None:
    """Median and 95th percentile turnaround, in seconds, as one JSON object."""
    from tagwatch.cli import cli_session
    from tagwatch.requests import service
    from tagwatch.requests.schemas import TurnaroundOut

    with cli_session() as session:
        found = service.turnaround(session, _moment(start, "from"), _moment(end, "to"))
    typer.echo(TurnaroundOut.model_validate(found).model_dump_json())


@requests_app.command("expire")
def expire() -> None:
    """Delete the files of requests past their expiry now (the server does this itself)."""
    from tagwatch.cli import cli_session
    from tagwatch.db.base import utcnow
    from tagwatch.requests import service

    with cli_session() as session:
        count = service.expire_due(session, utcnow())
    typer.echo(f"{count} request(s) expired")


def register(app: typer.Typer) -> None:
    app.add_typer(requests_app, name="data-requests")
