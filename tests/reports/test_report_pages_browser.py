"""Every report page in Chromium, as the roles that use it, through axe: statistics with their
charts (management information and published), data quality with its trend and records to
fix (pseudonymised for analysts, linked for managers), and the data dictionary."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tagwatch.access.service import create_user
from tagwatch.db.engine import unit_of_work
from tagwatch.reports.dataquality import take_snapshot

pytestmark = pytest.mark.browser

# (username, role) of the report users the portal's seeded world does not have.
REPORT_USERS = (("analyst1", "analyst"), ("admin1", "administrator"))


@pytest.fixture(scope="module")
def report_world(
    seeded: Any, server_sessions: sessionmaker[Session], password_of: Any
) -> dict[str, str]:
    """The seeded caseload, a data quality snapshot for the trend, and the report users;
    returns the statistics period covering the seeded orders."""
    now = dt.datetime.now(dt.UTC)
    with unit_of_work(server_sessions) as session:
        for username, role in REPORT_USERS:
            create_user(
                session,
                username=username,
                roles=[role],
                display_name=username.capitalize(),
                password=password_of(username),
            )
        take_snapshot(session, now)
    today = now.date()
    return {"from": str(today - dt.timedelta(days=40)), "to": str(today)}


def _visit(page: Any, path: str, assert_accessible: Any) -> None:
    response = page.goto(path)
    assert response is not None and response.ok, f"{path}: {response and response.status}"
    assert_accessible(page)


def _statistics(period: dict[str, str], **extra: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in {**period, **extra}.items())
    return f"/reports/statistics?{query}"


def test_an_analyst_reads_statistics_data_quality_and_the_dictionary(
    page: Any, sign_in: Any, password_of: Any, assert_accessible: Any, report_world: Any
) -> None:
    sign_in(page, "analyst1", password_of("analyst1"))
    for by, letter in (("region", "c"), ("age_band", "e"), ("all", "a")):
        _visit(page, _statistics(report_world, by=by), assert_accessible)
        assert page.locator("svg.tw-chart").count() == 5
        assert page.locator(f"#table-1{letter}").count() == 1
    # The charts draw the seeded people: at least one bar.
    assert page.locator("svg.tw-chart rect").count() > 0

    response = page.goto("/reports/statistics?from=2026-02-30&to=2026-03-31")
    assert response is not None and response.status == 400
    assert "There is a problem" in page.locator(".govuk-error-summary").inner_text()
    assert_accessible(page)

    _visit(page, "/reports/data-quality", assert_accessible)
    assert page.locator("#dq-trend").count() == 1
    worst = page.locator("#dq-worst")
    assert worst.count() == 1
    assert worst.locator("a").count() == 0  # analysts see pseudonyms, never links to people

    _visit(page, "/reports/data-dictionary", assert_accessible)
    assert page.locator("table").count() > 10
    assert "proposed policy" in page.locator(".govuk-inset-text").inner_text()


def test_an_administrator_reads_published_statistics(
    page: Any, sign_in: Any, password_of: Any, assert_accessible: Any, report_world: Any
) -> None:
    sign_in(page, "admin1", password_of("admin1"))
    _visit(page, _statistics(report_world, published="1"), assert_accessible)
    assert page.get_by_label("Suppress small numbers for publication").is_checked()
    assert "[c]" in page.locator("main").inner_text()


def test_a_manager_reads_their_units_records_to_fix(
    page: Any, sign_in: Any, password_of: Any, assert_accessible: Any, report_world: Any
) -> None:
    sign_in(page, "manager1", password_of("manager1"))
    _visit(page, "/reports/data-quality", assert_accessible)
    assert page.locator("#dq-worst a[href^='/people/']").count() > 0
    _visit(page, _statistics(report_world, by="delivery_unit"), assert_accessible)
