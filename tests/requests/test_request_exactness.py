"""Whatever the fixes and the period, the files hold exactly the accepted fixes in it."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from request_cases import APPROVER, POLICE, T0, caller
from sqlalchemy.orm import Session

from tagwatch.cases.models import Allocation, Person
from tagwatch.requests import service

NOW = T0 + dt.timedelta(days=10)
OFFICER = caller("pc_exact", POLICE, force_code="WYP")
INSPECTOR = caller("insp_exact", APPROVER)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    minutes=st.sets(st.integers(0, 3 * 24 * 60), max_size=40),
    implausible_every=st.integers(2, 7),
    start_minute=st.integers(0, 2 * 24 * 60),
    length_minutes=st.integers(1, 24 * 60),
)
def test_files_hold_exactly_the_accepted_fixes_in_the_period(
    db: Session,
    make_wearer: Callable[..., Allocation],
    add_fixes: Callable[..., None],
    minutes: set[int],
    implausible_every: int,
    start_minute: int,
    length_minutes: int,
) -> None:
    allocation = make_wearer()
    ordered = sorted(minutes)
    implausible = frozenset(m for i, m in enumerate(ordered) if i % implausible_every == 0)
    add_fixes(allocation, ordered, implausible)
    person = db.get(Person, allocation.person_id)
    assert person is not None
    start = T0 + dt.timedelta(minutes=start_minute)
    end = start + dt.timedelta(minutes=length_minutes)
    request = service.create_request(
        db,
        OFFICER,
        service.NewRequest(person.ref, start, end, "Enquiry", "crime", "13/2/26"),
        now=NOW,
    )
    service.approve(db, INSPECTOR, request.id, "ok", now=NOW)
    expected = [
        m
        for m in ordered
        if m not in implausible and start_minute <= m <= start_minute + length_minutes
    ]
    content = service.download(db, OFFICER, request.id, "csv", now=NOW).content
    rows = list(csv.DictReader(io.StringIO((content or b"").decode())))
    times = [dt.datetime.fromisoformat(r["time"].replace("Z", "+00:00")) for r in rows]
    assert times == [T0 + dt.timedelta(minutes=m) for m in expected]
    assert request.fix_count == len(expected)
