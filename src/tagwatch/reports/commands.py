"""`tagwatch report stats` and `tagwatch dq report`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

report_app = typer.Typer(help="Statistics and service performance", no_args_is_help=True)
dq_app = typer.Typer(help="Data quality scores", no_args_is_help=True)


@report_app.command("stats")
def stats(
    start: str = typer.Option(..., "--from", help="first day of the period, YYYY-MM-DD"),
    end: str = typer.Option(..., "--to", help="last day of the period, YYYY-MM-DD"),
    out: Path = typer.Option(..., "--out", help="a .ods or .csv file to write"),
    published: bool = typer.Option(
        False, "--published", help="suppress small numbers for publication"
    ),
    threshold: int = typer.Option(
        5, "--threshold", min=2, help="smallest count shown when published"
    ),
) -> None:
    """Write the statistics for a period to a spreadsheet (ODS) or CSV."""
    from tagwatch.cli import cli_session
    from tagwatch.reports import service

    fmt = out.suffix.lower().lstrip(".")
    try:
        period = service.parse_period(start, end)
        if fmt not in service.FORMATS:
            raise ValueError(f"--out: must end in .ods or .csv, not {out.name!r}")
        with cli_session() as session:
            content = service.export(
                session, None, period, fmt, published=published, threshold=threshold
            )
    except ValueError as error:
        typer.echo(f"Error: {error}", err=True)
        raise typer.Exit(2) from None
    out.write_bytes(content)
    typer.echo(
        f"Wrote {out} ({'published' if published else 'management information'}, {period.label})"
    )


@dq_app.command("report")
def dq_report(
    unit: str | None = typer.Option(None, "--unit", help="one delivery unit code"),
    snapshot: bool = typer.Option(False, "--snapshot", help="also store today's scores"),
) -> None:
    """Print each data quality rule's score, overall and by delivery unit."""
    from tagwatch.cli import cli_session
    from tagwatch.reports import dataquality as dq

    now = dt.datetime.now(dt.UTC)
    with cli_session() as session:
        scores, _ = dq.evaluate(session, now)
        if snapshot:
            dq.take_snapshot(session, now)
    shown = [s for s in scores if s.delivery_unit_code == unit] if unit else dq.overall(scores)
    typer.echo(
        f"{'rule':8} {'dimension':13} {'unit':16} {'checked':>8} {'failed':>7} {'score':>7} {'target':>7}"  # noqa: E501
    )
    for s in shown:
        rule = dq.RULES_BY_ID[s.rule_id]
        score = "-" if s.score is None else f"{s.score:.1%}"
        flag = "" if s.meets_threshold else "  below target"
        typer.echo(
            f"{s.rule_id:8} {rule.dimension:13} {s.delivery_unit_code:16} {s.checked:>8} {s.failed:>7}"  # noqa: E501
            f" {score:>7} {rule.threshold:>7.0%}{flag}"
        )


@report_app.command("dictionary")
def dictionary(
    check: bool = typer.Option(
        False, "--check", help="fail when the committed file is out of date"
    ),
) -> None:
    """Write docs/data-dictionary.md from the models (or check that it is current)."""
    from tagwatch.reports.dictionary import DOC_PATH, missing_meanings, render_markdown

    gaps = missing_meanings()
    if gaps:
        typer.echo(
            "Fields with no meaning in reports/field_meanings.py: " + ", ".join(gaps), err=True
        )
        raise typer.Exit(1)
    text = render_markdown()
    if check:
        current = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""
        if current != text:
            typer.echo(f"{DOC_PATH} is out of date: run tagwatch report dictionary", err=True)
            raise typer.Exit(1)
        typer.echo(f"{DOC_PATH} is current")
        return
    DOC_PATH.write_text(text, encoding="utf-8")
    typer.echo(f"Wrote {DOC_PATH}")


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")
    app.add_typer(dq_app, name="dq")
