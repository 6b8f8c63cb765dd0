"""Data quality scores agree with a recount of the imported document; pages show and hide."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tagwatch.access.principal import Principal
from tagwatch.access.pseudonymise import pseudonym
from tagwatch.cases.models import Person
from tagwatch.cases.orderfile import import_document
from tagwatch.cases.refdata import seed_reference_data
from tagwatch.reports import dataquality as dq
from tagwatch.reports.models import DqSnapshot
from tagwatch.reports.periodic import TASKS
from tagwatch.simulate.cohort import generate_cohort

NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


@pytest.fixture
def cohort(db: Session) -> dict[str, Any]:
    seed_reference_data(db)
    document = generate_cohort(40, seed=5, start=dt.date(2026, 2, 1))
    document["people"][0]["ethnicity"] = "NR"
    document["people"][1]["ethnicity"] = "NR"
    document["people"][1]["disability"] = "not_recorded"
    import_document(db, document)
    db.flush()
    return document


def _overall(scores: list[dq.Score], rule_id: str) -> dq.Score:
    return next(s for s in dq.overall(scores) if s.rule_id == rule_id)


def test_scores_match_a_recount_of_the_document(db: Session, cohort: dict[str, Any]) -> None:
    people = cohort["people"]
    scores, failures = dq.evaluate(db, NOW)
    ethnicity = _overall(scores, "DQ-C01")
    assert (ethnicity.checked, ethnicity.failed) == (
        len(people),
        sum(p["ethnicity"] == "NR" for p in people),
    )
    disability = _overall(scores, "DQ-C02")
    assert disability.failed == sum(p["disability"] == "not_recorded" for p in people)
    curfews = [
        (o, c)
        for p in people
        for o in p["orders"]
        if o["status"] in ("active", "suspended")
        for c in o["conditions"]
        if c["type"] == "curfew"
    ]
    unchecked = sum(
        {"domestic_abuse", "child_safeguarding"}
        - {k["kind"] for k in c.get("safeguarding_checks") or []}
        != set()
        for _, c in curfews
    )
    checks = _overall(scores, "DQ-K03")
    assert (checks.checked, checks.failed) == (len(curfews), unchecked)
    fitted = sum(
        1
        for p in people
        for o in p["orders"]
        if o["status"] == "active"
        for a in o["allocations"]
        if a["removed_at"] is None
    )
    heard = _overall(scores, "DQ-T01")
    assert (heard.checked, heard.failed) == (fitted, fitted)  # no telemetry was sent
    assert sum(s.checked for s in scores if s.rule_id == "DQ-C01") == len(people)
    assert len(failures) == sum(s.failed for s in scores)


def test_daily_snapshot_is_stored_once_a_day_and_gives_a_trend(
    db: Session, cohort: dict[str, Any]
) -> None:
    task = next(t for t in TASKS if t.name == "reports.dq_snapshot")
    written = task.run(db, NOW)
    task.run(db, NOW + dt.timedelta(hours=1))
    task.run(db, NOW + dt.timedelta(days=1))
    rows = db.scalars(select(DqSnapshot).where(DqSnapshot.day == NOW.date())).all()
    assert len(rows) == written
    trend = dq.trend(db, None, 30, (NOW + dt.timedelta(days=1)).date())
    assert list(trend) == [NOW.date(), NOW.date() + dt.timedelta(days=1)]
    people = cohort["people"]
    expected = sum(p["ethnicity"] != "NR" for p in people) / len(people)
    assert trend[NOW.date()]["DQ-C01"] == pytest.approx(expected)


def test_page_links_records_for_staff_and_pseudonymises_for_analysts(
    db: Session,
    cohort: dict[str, Any],
    make_client: Callable[..., TestClient],
    caller: Callable[..., Principal],
    settings: Any,
) -> None:
    person = db.scalar(select(Person).where(Person.ref == cohort["people"][1]["ref"]))
    assert person is not None
    manager = make_client(caller({"dq:read", "person:read"})).get("/reports/data-quality")
    assert manager.status_code == 200
    assert f'href="/people/{person.id}"' in manager.text
    assert "DQ-C01" in manager.text
    analyst = make_client(caller({"dq:read", "pseudonymised:read"})).get("/reports/data-quality")
    assert analyst.status_code == 200
    assert person.ref not in analyst.text and "/people/" not in analyst.text
    assert pseudonym(person.ref, settings.pseudonym_key) in analyst.text
    assert make_client(caller({"report:read"})).get("/reports/data-quality").status_code == 403
