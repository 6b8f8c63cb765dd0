"""Statistics as an ODS spreadsheet in the layout government statistics use, and as CSV.

Cover, notes and contents sheets, then one table a sheet; each sheet's title is in its first
cell, and the notes a table carries are referenced as `[note N]` in its title.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from odf.opendocument import OpenDocumentSpreadsheet
from odf.table import Table as OdsTable
from odf.table import TableCell, TableRow
from odf.text import P

from tagwatch.reports.statistics import Publication, Table


def _notes_ref(notes: tuple[int, ...]) -> str:
    return "".join(f" [note {n}]" for n in notes)


def _cell(value: Any) -> TableCell:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        shown = int(value) if float(value).is_integer() else value
        cell = TableCell(valuetype="float", value=shown)
        cell.addElement(P(text=str(shown)))
        return cell
    cell = TableCell(valuetype="string")
    cell.addElement(P(text="" if value is None else str(value)))
    return cell


def _sheet(name: str, rows: list[list[Any]]) -> OdsTable:
    sheet = OdsTable(name=name)
    for row in rows:
        element = TableRow()
        for value in row:
            element.addElement(_cell(value))
        sheet.addElement(element)
    return sheet


def table_rows(table: Table) -> list[list[Any]]:
    header = [table.row_heading, *table.columns]
    body = [[label, *values] for label, values in zip(table.rows, table.grid(), strict=True)]
    return [header, *body]


def cover_rows(publication: Publication) -> list[list[Any]]:
    kind = (
        f"Published: counts from 1 to {publication.threshold - 1} are shown as [c]"
        if publication.threshold
        else "Management information: not for publication (small numbers are shown)"
    )
    return [
        [f"Electronic monitoring statistics, {publication.period.label}"],
        [
            "This spreadsheet contains the tables of electronic monitoring statistics for the period."  # noqa: E501
        ],
        [kind],
        [f"Produced: {publication.produced_at:%-d %B %Y %H:%M} UTC"],
        ["The notes sheet defines every measure; the contents sheet lists the tables."],
    ]


def build_ods(publication: Publication) -> bytes:
    document = OpenDocumentSpreadsheet()
    sheets = document.spreadsheet
    sheets.addElement(_sheet("Cover", cover_rows(publication)))
    notes = [["Notes"], ["Note number", "Note text"]]
    notes += [[f"note {n}", text] for n, text in sorted(publication.notes.items())]
    sheets.addElement(_sheet("Notes", notes))
    contents = [["Contents"], ["Sheet name", "Table title"]]
    contents += [[f"Table_{t.key}", t.title + _notes_ref(t.notes)] for t in publication.tables]
    contents.append(["Performance", "Service performance" + _notes_ref(())])
    sheets.addElement(_sheet("Contents", contents))
    for table in publication.tables:
        rows = [[table.title + _notes_ref(table.notes)], *table_rows(table)]
        sheets.addElement(_sheet(f"Table_{table.key}", rows))
    sheets.addElement(
        _sheet("Performance", [["Service performance"], *performance_rows(publication)])
    )
    buffer = io.BytesIO()
    document.write(buffer)
    return buffer.getvalue()


def performance_rows(publication: Publication) -> list[list[Any]]:
    perf = publication.performance
    rows: list[list[Any]] = [["Measure", "Value"]]
    for stage, figures in perf["alert_path"].items():
        label = stage.replace("_", " ").capitalize()
        rows.append([f"{label}: alerts measured", figures["count"]])
        rows.append([f"{label}: median (seconds)", figures["median_seconds"]])
        rows.append([f"{label}: 95th percentile (seconds)", figures["p95_seconds"]])
    rows.append(
        [
            "Alerts without an outcome past their deadline",
            perf["alerts_without_outcome_past_deadline"],
        ]
    )
    rows.append(
        [
            "Orders awaiting fitting past their deadline",
            perf["orders_awaiting_fitting_past_deadline"],
        ]
    )
    for key, value in perf["crime_mapping"].items():
        rows.append([f"Crime mapping: {key}", value])
    turnaround = perf["data_request_turnaround"]
    if isinstance(turnaround, str):
        rows.append(["Data request turnaround", turnaround])
    else:
        for stage, figures in turnaround.items():
            label = stage.replace("_", " ")
            rows.append([f"Data requests, {label}: median (seconds)", figures["median_seconds"]])
            rows.append(
                [f"Data requests, {label}: 95th percentile (seconds)", figures["p95_seconds"]]
            )
    return rows


def build_csv(publication: Publication) -> str:
    """Every table in one long CSV: table, breakdown, category, measure, value."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["table", "title", "breakdown", "category", "measure", "value"])
    for table in publication.tables:
        for label, values in zip(table.rows, table.grid(), strict=True):
            for column, value in zip(table.columns, values, strict=True):
                writer.writerow(
                    [
                        table.key,
                        table.title,
                        table.row_heading,
                        label,
                        column,
                        "" if value is None else value,
                    ]
                )
    for measure, value in performance_rows(publication)[1:]:
        writer.writerow(
            ["performance", "Service performance", "", "", measure, "" if value is None else value]
        )
    return out.getvalue()
