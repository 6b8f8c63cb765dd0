"""`tagwatch compliance ...`: re-derive violations from the raw records (reproducibility)."""

from __future__ import annotations

import datetime as dt
import json

import typer

compliance_app = typer.Typer(help="The compliance engine", no_args_is_help=True)


def _aware(value: dt.datetime | None, name: str) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise typer.BadParameter(f"{name}: needs a UTC offset (e.g. 2026-11-23T19:00:00Z)")
    return value.astimezone(dt.UTC)


@compliance_app.command("evaluate")
def evaluate(
    allocation: list[int] = typer.Option(
        None, "--allocation", help="allocation id(s); all when absent"
    ),
    start: str = typer.Option(None, "--from", help="re-derive from this time (default: fitting)"),
    end: str = typer.Option(None, "--to", help="evaluate as at this time (default: now)"),
) -> None:
    """Re-derive violations from the stored records with the current rule set."""
    from tagwatch.cli import cli_session
    from tagwatch.compliance import service
    from tagwatch.compliance.context import all_allocation_ids, load_contexts
    from tagwatch.compliance.rules import RULE_SET_VERSION
    from tagwatch.db.base import utcnow

    try:
        since = _aware(dt.datetime.fromisoformat(start), "--from") if start else None
        until = _aware(dt.datetime.fromisoformat(end), "--to") if end else None
    except ValueError as error:
        raise typer.BadParameter(f"--from/--to: not an RFC 3339 time ({error})") from error
    now = until or utcnow()
    with cli_session() as session:
        ids = list(allocation) if allocation else all_allocation_ids(session)
        contexts = load_contexts(session, ids)
        missing = [allocation_id for allocation_id in ids if allocation_id not in contexts]
        if missing:
            raise typer.BadParameter(f"--allocation: no allocation {missing[0]}")
        windows = {a: since or context.fitted_at for a, context in contexts.items()}
        event = service.evaluate_and_publish(session, windows, now)
    typer.echo(
        json.dumps(
            {
                "rule_set_version": RULE_SET_VERSION,
                "allocations": len(windows),
                "evaluated_at": now.isoformat(),
                "opened": len(event.opened),
                "updated": len(event.updated),
                "closed": len(event.closed),
            }
        )
    )


def register(app: typer.Typer) -> None:
    app.add_typer(compliance_app, name="compliance")
