"""`tagwatch analytics export|gis-views`: the pseudonymised Parquet export and PostGIS views."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)

analytics_app = typer.Typer(
    help="Pseudonymised analytics: daily Parquet export, PostGIS views (docs/analytics.md)",
    no_args_is_help=True,
)


def _day(value: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2026-11-22") from None
    if dt.datetime.combine(day, dt.time(), dt.UTC) > dt.datetime.now(dt.UTC):
        raise typer.BadParameter(f"{day} has not begun yet (days are UTC)")
    return day


@analytics_app.command("export")
def export(
    day: Annotated[str, typer.Option("--day", help="UTC day to export, YYYY-MM-DD")],
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            file_okay=False,
            help="Folder of the export (default: analytics in the var folder)",
        ),
    ] = None,
) -> None:
    """Export one UTC day as pseudonymised Parquet (replaces that day's files)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from tagwatch.analytics.export import default_out_dir, export_day
    from tagwatch.cli import cli_session
    from tagwatch.settings import Settings

    settings = Settings()
    when = _day(day)
    target = out_dir or default_out_dir(settings)
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err
    ) as bar:
        task = bar.add_task(f"Exporting {when}")

        def show(table: str, rows: int) -> None:
            bar.update(task, description=f"Exporting {when}: {table} {rows:,} rows")

        with cli_session(settings) as session:
            result = export_day(session, when, target, via="cli", progress=show)
    counts = ", ".join(f"{name} {rows:,}" for name, rows in result.rows.items())
    out.print(f"Exported {when} to {target}: {counts}", markup=False, highlight=False)


@analytics_app.command("gis-views")
def gis_views(
    max_gap: Annotated[
        float | None,
        typer.Option(
            "--max-gap", min=0, help="Seconds between fixes that split a track (default: 600)"
        ),
    ] = None,
    role: Annotated[str, typer.Option(help="Read-only role for GIS analysts")] = "tagwatch_gis",
) -> None:
    """Create or replace the PostGIS views (schema gis) and their read-only role."""
    from tagwatch.analytics.gis import DEFAULT_MAX_GAP_S, GisUnavailable, create_gis_views
    from tagwatch.cli import cli_session

    try:
        with cli_session() as session:
            made = create_gis_views(
                session, max_gap_s=DEFAULT_MAX_GAP_S if max_gap is None else max_gap, role=role
            )
    except (GisUnavailable, ValueError) as error:
        err.print(f"[red]GIS views not created:[/red] {error}", highlight=False)
        raise typer.Exit(code=1) from None
    views = ", ".join(f"{made.schema}.{name}" for name in made.views)
    state = "created" if made.role_created else "updated"
    out.print(f"Views {views}; role {made.role} {state} (SELECT on schema {made.schema} only)")


def register(app: typer.Typer) -> None:
    app.add_typer(analytics_app, name="analytics")
