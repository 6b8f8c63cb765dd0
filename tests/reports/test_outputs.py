"""Spreadsheet, CSV, command line, pages and their guards."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from odf.opendocument import load
from odf.table import Table as OdsTable
from odf.table import TableCell, TableRow
from sqlalchemy import select
from sqlalchemy.orm import Session

from tagwatch.access.models import AuditEntry
from tagwatch.access.principal import Principal
from tagwatch.cases.orderfile import import_document
from tagwatch.cases.refdata import seed_reference_data
from tagwatch.reports import ods
from tagwatch.reports.statistics import Period, compute
from tagwatch.simulate.cohort import generate_cohort

PERIOD = Period(dt.date(2026, 1, 1), dt.date(2026, 3, 31))
QUERY = "from=2026-01-01&to=2026-03-31"


@pytest.fixture
def cohort(db: Session) -> dict[str, Any]:
    seed_reference_data(db)
    document = generate_cohort(40, seed=11, start=dt.date(2026, 2, 1))
    import_document(db, document)
    db.flush()
    return document


def _sheets(content: bytes) -> dict[str, list[list[str]]]:
    document = load(io.BytesIO(content))
    found = {}
    for sheet in document.spreadsheet.getElementsByType(OdsTable):
        rows = []
        for row in sheet.getElementsByType(TableRow):
            rows.append([str(cell) for cell in row.getElementsByType(TableCell)])
        found[sheet.getAttribute("name")] = rows
    return found


def test_spreadsheet_has_cover_notes_contents_and_a_table_a_sheet(
    db: Session, cohort: dict[str, Any]
) -> None:
    publication = compute(db, PERIOD, threshold=5)
    content = ods.build_ods(publication)
    assert (
        zipfile.ZipFile(io.BytesIO(content)).read("mimetype")
        == b"application/vnd.oasis.opendocument.spreadsheet"
    )
    sheets = _sheets(content)
    names = list(sheets)
    assert names[:3] == ["Cover", "Notes", "Contents"]
    assert len(names) == 3 + len(publication.tables) + 1
    table = publication.tables[2]
    sheet = sheets[f"Table_{table.key}"]
    assert sheet[0][0].startswith(table.title) and "[note 1]" in sheet[0][0]
    assert sheet[1] == [table.row_heading, *table.columns]
    assert sheet[-1][0] == "Total"
    assert [r[0] for r in sheets["Contents"][2:-1]] == [
        f"Table_{t.key}" for t in publication.tables
    ]
    hidden = sum(
        row.count("[c]")
        for name, rows in sheets.items()
        if name.startswith("Table_")
        for row in rows
    )
    assert hidden == sum(row.count("[c]") for t in publication.tables for row in t.grid())


def test_cli_writes_published_spreadsheet_and_csv(
    db: Session, cohort: dict[str, Any], tmp_path: Any
) -> None:
    from tagwatch.reports import service

    content = service.export(db, None, PERIOD, "csv", published=True)
    lines = content.decode().splitlines()
    assert lines[0] == "table,title,breakdown,category,measure,value"
    assert any(line.startswith("1a,") for line in lines)
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "report.export")) is not None
    with pytest.raises(ValueError, match="format"):
        service.export(db, None, PERIOD, "xlsx", published=True)
    with pytest.raises(ValueError, match="to:"):
        service.parse_period("2026-03-01", "2026-01-01")


def test_statistics_page_charts_and_tables(
    make_client: Callable[..., TestClient], caller: Callable[..., Principal], cohort: dict[str, Any]
) -> None:
    client = make_client(caller({"report:read", "pseudonymised:read"}))
    page = client.get(f"/reports/statistics?{QUERY}&by=sex")
    assert page.status_code == 200
    assert page.text.count("<svg") >= 5 and 'role="img"' in page.text
    assert "Table 1f" in page.text and "Female" in page.text
    assert "not yet available" in page.text.lower() or "Request to decision" in page.text
    ods_file = client.get(f"/reports/statistics.ods?{QUERY}")
    assert ods_file.status_code == 200 and ods_file.content[:2] == b"PK"
    assert client.get(f"/reports/statistics.csv?{QUERY}&published=1").status_code == 403
    assert client.get(f"/reports/statistics?from=2026-13-01&to={PERIOD.end}").status_code == 400
    assert make_client(caller({"dq:read"})).get("/reports/statistics").status_code == 403
    api = make_client(caller({"report:read", "report:publish"})).get(
        f"/api/v1/reports/statistics?{QUERY}&published=true"
    )
    assert api.status_code == 200 and api.json()["threshold"] == 5
