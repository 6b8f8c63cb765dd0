"""`tagwatch orders import|export` and `tagwatch refdata seed`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    orders = typer.Typer(help="Order files (docs/order-format.md)", no_args_is_help=True)
    refdata = typer.Typer(help="Reference data", no_args_is_help=True)
    app.add_typer(orders, name="orders")
    app.add_typer(refdata, name="refdata")

    @orders.command("import")
    def orders_import(
        file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    ) -> None:
        """Import an order file; a file with any error is refused whole, listing every error."""
        from tagwatch.access.audit import record
        from tagwatch.cases.orderfile import import_document, load
        from tagwatch.cases.validation import ValidationFailed
        from tagwatch.cli import cli_session

        try:
            with cli_session() as session, err.status("Importing"):
                result = import_document(session, load(file.read_text(encoding="utf-8")))
                record(session, None, "orders.import", subject_type="order_file",
                       subject_id=file.name, detail=vars(result))  # fmt: skip
        except ValidationFailed as exc:
            for error in exc.errors:
                err.print(error, markup=False, highlight=False)
            err.print(f"[red]Refused: {len(exc.errors)} error(s); nothing was imported[/red]")
            raise typer.Exit(code=1) from None
        summary = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in vars(result).items())
        out.print(f"Imported {file.name}: {summary}", markup=False, highlight=False)

    @orders.command("export")
    def orders_export(
        out_file: Annotated[
            Path | None, typer.Option("--out", help="Write here instead of standard output")
        ] = None,
    ) -> None:
        """Export every device, person and order in the order file format."""
        import sys

        from tagwatch.access.audit import record
        from tagwatch.cases.orderfile import dumps, export_document
        from tagwatch.cli import cli_session

        with cli_session() as session:
            document = export_document(session)
            record(session, None, "orders.export", subject_type="order_file",
                   subject_id=str(out_file) if out_file else "stdout",
                   detail={"people": len(document["people"])})  # fmt: skip
        text = dumps(document)
        if out_file is None:
            sys.stdout.write(text)
        else:
            out_file.write_bytes(text.encode("utf-8"))

    @refdata.command("seed")
    def refdata_seed() -> None:
        """Add the public reference values that are missing (safe to run again)."""
        from tagwatch.cases.refdata import seed_reference_data
        from tagwatch.cli import cli_session

        with cli_session() as session:
            added = seed_reference_data(session)
        out.print(f"Reference data: {added} value(s) added")
