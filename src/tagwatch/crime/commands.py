"""`tagwatch crimes`: receive a police file, export a batch's matches, ask where someone was."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tagwatch.access.principal import Principal

out = Console()
err = Console(stderr=True)


def _operator() -> Principal:
    """Whoever runs the command, as the audit log names them."""
    return Principal(
        user_id=None,
        username=f"cli:{getpass.getuser()}",
        display_name="Command line",
        roles=frozenset({"command_line"}),
        permissions=frozenset(),
    )


def register(app: typer.Typer) -> None:
    crimes = typer.Typer(
        help="Crime mapping: police crime batches and matches", no_args_is_help=True
    )
    app.add_typer(crimes, name="crimes")

    @crimes.command("import")
    def crimes_import(
        file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
        force: Annotated[
            str | None, typer.Option("--force", help="Force code every row must carry")
        ] = None,
        match: Annotated[bool, typer.Option(help="Match the batch once stored")] = True,
    ) -> None:
        """Receive a police crime CSV (13 columns) as a batch, then match it."""
        from tagwatch.cli import cli_session
        from tagwatch.crime import service

        with cli_session() as session:
            summary = service.import_batch(
                session,
                file.read_bytes(),
                file_name=file.name,
                principal=_operator(),
                expected_force=force,
                match=match,
            )
        out.print(
            f"Batch {summary.batch_id} ({summary.batch_ref or 'no batch id'}): {summary.status}; "
            f"{summary.accepted_rows} of {summary.total_rows} rows accepted, "
            f"{summary.duplicate_rows} unchanged re-sends"
        )
        for problem in summary.file_errors:
            err.print(f"[red]{problem}[/red]")
        if summary.errors:
            table = Table("Row", "Field", "Error", "Reason", "Value")
            for e in summary.errors:
                table.add_row(str(e.row), e.field, e.code, e.reason, e.value[:40])
            err.print(table)
        if summary.run:
            out.print(f"Run {summary.run.run_id}: {summary.run.match_count} matches")
        if summary.status in ("failed", "error"):
            raise typer.Exit(code=1)

    @crimes.command("match")
    def crimes_match(
        batch: Annotated[int, typer.Option("--batch", help="Batch number")],
        out_file: Annotated[Path, typer.Option("--out", help="Write the matches CSV here")],
        rerun: Annotated[bool, typer.Option(help="Run the matcher again first")] = False,
        radius: Annotated[float, typer.Option(help="Radius, metres")] = 100.0,
        tolerance: Annotated[float, typer.Option(help="Window tolerance, seconds")] = 0.0,
        max_gap: Annotated[float, typer.Option(help="Longest gap joined, seconds")] = 600.0,
    ) -> None:
        """Write the matches of a batch's latest run as CSV (running the matcher if asked)."""
        from tagwatch.cli import cli_session
        from tagwatch.crime import service
        from tagwatch.crime.matcher import MatchParams

        try:
            params = MatchParams(radius_m=radius, tolerance_s=tolerance, max_gap_s=max_gap)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
        with cli_session() as session:
            try:
                if rerun:
                    service.run_matching(session, batch, principal=_operator(), params=params)
                text = service.export_matches(session, batch, _operator())
            except service.NotFound as exc:
                err.print(f"[red]Not found: {exc}[/red]")
                raise typer.Exit(code=1) from exc
        out_file.write_text(text, encoding="utf-8")
        out.print(f"{text.count(chr(10)) - 1} matches written to {out_file}")

    @crimes.command("where")
    def crimes_where(
        person: Annotated[str, typer.Option("--person", help="Person reference")],
        crime: Annotated[str, typer.Option("--crime", help="Crime reference")],
        force: Annotated[str | None, typer.Option("--force", help="Force code")] = None,
        radius: Annotated[float, typer.Option(help="Radius, metres")] = 100.0,
        purpose: Annotated[str | None, typer.Option(help="Why (for the audit log)")] = None,
    ) -> None:
        """Where was a named person during a crime's window?"""
        from tagwatch.cli import cli_session
        from tagwatch.crime import service
        from tagwatch.crime.matcher import MatchParams

        with cli_session() as session:
            try:
                answer = service.where_was_person(
                    session,
                    person,
                    crime,
                    _operator(),
                    force_code=force,
                    params=MatchParams(radius_m=radius),
                    purpose=purpose,
                )
            except (service.NotFound, service.CrimeError) as exc:
                err.print(f"[red]{exc}[/red]")
                raise typer.Exit(code=1) from exc
        out.print(answer.sentence)
        out.print(f"Coverage of the window: {answer.coverage_pct:.1f}%")
        for start, end in answer.uncovered:
            out.print(f"No data {start:%Y-%m-%d %H:%M:%S} to {end:%H:%M:%S} UTC")
