"""Browser-test harness: a real server in a thread, Chromium through Playwright, axe checks.

The server runs against its own database (a SQLite file, or a separate schema of the
PostgreSQL database named by TAGWATCH_TEST_DATABASE_URL) because it commits for real, and the
rest of the suite counts on a store that only ever holds rolled-back test data.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from tagwatch.app import create_app
from tagwatch.db.engine import make_engine, make_sessionmaker
from tagwatch.db.metadata import load_metadata
from tagwatch.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BROWSER_SCHEMA = "tw_browser"
# axe impacts that fail a page (WCAG 2.2 AA rules are selected in `axe_violations`).
FAILING_IMPACTS = frozenset({"serious", "critical"})


def _free_port() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture(scope="session")
def server_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    url = os.environ.get("TAGWATCH_TEST_DATABASE_URL", "")
    metadata = load_metadata()
    if url.startswith("postgresql"):
        admin = make_engine(url)
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {BROWSER_SCHEMA} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {BROWSER_SCHEMA}"))
        admin.dispose()
        engine = make_engine(url, connect_args={"options": f"-csearch_path={BROWSER_SCHEMA}"})
    else:
        engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('web') / 'server.db'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def server_sessions(server_engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(server_engine)


@pytest.fixture(scope="session")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        environment="test",
        var_dir=tmp_path_factory.mktemp("web-var"),
        secret_key="browser-test-secret",
        log_json=True,
        run_periodic_tasks=False,
        tile_url="",
    )


@pytest.fixture(scope="session")
def live_server(server_settings: Settings, server_engine: Engine) -> Iterator[str]:
    """The app served by uvicorn on 127.0.0.1 at a free port; yields its base URL."""
    app = create_app(server_settings, engine=server_engine)
    sock = _free_port()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", timeout_graceful_shutdown=1, lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Chromium for one test module: only one sync Playwright may run in a thread at a time,
    and other folders' journeys (tests/browser_harness.py) start their own."""
    if not CHROMIUM.exists():
        print(f"browser tests skipped: {CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Any, live_server: str) -> Iterator[Any]:
    context = chromium.new_context(base_url=live_server, locale="en-GB")
    context.set_default_timeout(10_000)
    browser_page = context.new_page()
    errors: list[str] = []
    browser_page.on("pageerror", lambda error: errors.append(str(error)))
    browser_page.js_errors = errors
    try:
        yield browser_page
    finally:
        context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def _sign_in(page: Any, username: str, password: str) -> None:
    page.goto("/sign-in")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Serious or critical WCAG 2.2 A/AA violations axe finds on the current page."""
    page.add_script_tag(url="/static/vendor/axe-core/axe.min.js")
    found: list[dict[str, Any]] = page.evaluate(
        """async () => {
          const result = await axe.run(document, {
            runOnly: {type: "tag",
                      values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]},
            resultTypes: ["violations"],
          });
          return result.violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
          }));
        }"""
    )
    return [v for v in found if v["impact"] in FAILING_IMPACTS]


def _assert_accessible(page: Any) -> None:
    violations = axe_violations(page)
    assert violations == [], f"{page.url}: {violations}"


@pytest.fixture
def sign_in() -> Any:
    """`sign_in(page, username, password)` through the real sign-in form."""
    return _sign_in


@pytest.fixture(name="axe_violations")
def axe_violations_fixture() -> Any:
    """`axe_violations(page)`: the serious or critical violations axe finds, for reporting."""
    return axe_violations


@pytest.fixture
def assert_accessible() -> Any:
    """`assert_accessible(page)`: axe finds no serious or critical violation."""
    return _assert_accessible


# --- the practitioners' world, seeded through the real services -------------------------

HOME = (51.5390, -0.1030)
# An exclusion zone about 400 m north of the curfew address.
ZONE = [
    [-0.1060, 51.5420],
    [-0.1000, 51.5420],
    [-0.1000, 51.5450],
    [-0.1060, 51.5450],
    [-0.1060, 51.5420],
]
DELIVERY_UNIT = "LDN-CAMISL"


# (username, roles, team, delivery unit, police force)
USERS = (
    ("officer1", ["probation_practitioner"], "Camden and Islington team", DELIVERY_UNIT, None),
    ("officer5", ["probation_practitioner"], "Hackney and City team", "LDN-HACKCITY", None),
    ("manager1", ["probation_manager"], "Camden and Islington team", DELIVERY_UNIT, None),
    ("police1", ["police_officer"], None, None, "MPS"),
)


def password_of(username: str) -> str:
    return f"{username}-test-password"


@dataclass(frozen=True)
class Seeded:
    person_id: int  # officer1's case, with a trail, alerts and an exclusion zone
    person_ref: str
    person_name: str
    other_person_id: int  # another team's case: outside officer1's scope
    plain_person_id: int  # officer1's case with no order yet
    alert_ids: list[int]
    open_alert_ids: list[int]  # open, and needing no tamper review
    tamper_alert_id: int  # for the manager to review
    practitioner_tamper_alert_id: int  # left unreviewed
    trail_start: dt.datetime
    trail_end: dt.datetime


def _person(given: str, family: str, dob: str, crn: str, pnc_serial: str) -> dict[str, Any]:
    from tagwatch.cases.identifiers import pnc_check_letter

    return {
        "names": [{"kind": "primary", "given": given, "family": family, "middle": None}],
        "date_of_birth": dob,
        "sex": "male",
        "gender": "man",
        "ethnicity": "W1",
        "disability": "no",
        "nationality": "GBR",
        "religion": "none",
        "language": "en",
        "interpreter_needed": False,
        "identifiers": {
            "crn": crn,
            "pnc": f"2001/{pnc_serial}{pnc_check_letter('2001', pnc_serial)}",
        },
        "restricted": False,
        "addresses": [
            {
                "ref": "home",
                "line1": "1 Upper Street",
                "line2": None,
                "town": "London",
                "postcode": "N1 0PN",
                "lat": HOME[0],
                "lon": HOME[1],
            }
        ],
    }


def _z(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _order(officer: str, now: dt.datetime) -> dict[str, Any]:
    start = now - dt.timedelta(days=20)
    check = {"checked_by": officer, "checked_at": _z(start), "outcome": "no_concerns"}
    return {
        "type": "licence",
        "start_date": start.date().isoformat(),
        "end_date": (now + dt.timedelta(days=300)).date().isoformat(),
        "notifying_organisation": {"kind": "prison", "name": "HMP Pentonville"},
        "responsible_organisation": {"kind": "probation", "name": "Camden and Islington"},
        "region": "LDN",
        "delivery_unit": DELIVERY_UNIT,
        "responsible_officer": officer,
        "fitting_deadline": None,
        "conditions": [
            {
                "type": "curfew",
                "start": _z(start),
                "end": None,
                "address_ref": "home",
                "timetable": [
                    {"day": d, "start": "19:00", "end": "07:00"}
                    for d in (
                        "monday",
                        "tuesday",
                        "wednesday",
                        "thursday",
                        "friday",
                        "saturday",
                        "sunday",
                    )
                ],
                "release_day": None,
                "safeguarding_checks": [
                    {"kind": "domestic_abuse", **check},
                    {"kind": "child_safeguarding", **check},
                ],
            },
            {
                "type": "exclusion_zone",
                "start": _z(start),
                "end": None,
                "name": "Victim's street",
                "geometry": {"type": "Polygon", "coordinates": [ZONE]},
                "schedule": None,
            },
            {"type": "trail_monitoring", "start": _z(start), "end": None},
        ],
    }


def _activate_and_fit(
    session: Session, principal: Any, order_ref: str, serial: str, fitted: dt.datetime
) -> None:
    from tagwatch.cases import service as cases

    for target in ("submitted", "awaiting_fitting", "active"):
        cases.transition_order(
            session, principal, order_ref, target, reason=f"{target} for the test"
        )
    cases.create_device(
        session, {"serial": serial, "type": "gps_tag", "model": "GT-1", "batch": "B1"}
    )
    cases.fit_device(session, principal, order_ref, serial, fitted)


def _feed(serial: str, start: dt.datetime, now: dt.datetime) -> bytes:
    """A morning walk: minute fixes, a 20-minute gap, a pass through the zone, a strap tamper."""
    lines = []
    t = start
    step = 0
    while t < now - dt.timedelta(minutes=2):
        minutes = (t - start).total_seconds() / 60
        in_gap = 40 <= minutes < 60
        if not in_gap:
            # North from home into the zone (minutes 70-80), then back.
            if 70 <= minutes < 80:
                lat, lon = 51.5435, -0.1030
            else:
                lat, lon = HOME[0] + 0.0002 * (step % 10), HOME[1] + 0.0001 * (step % 7)
            lines.append(
                {
                    "device": serial,
                    "type": "gps",
                    "time": _z(t),
                    "lat": lat,
                    "lon": lon,
                    "accuracy_m": 6.0,
                    "source": "gnss",
                    "seq": step,
                }
            )
        step += 1
        t += dt.timedelta(minutes=1)
    lines.append(
        {
            "device": serial,
            "type": "status",
            "time": _z(start + dt.timedelta(minutes=30)),
            "strap": "open",
            "seq": 100_000,
        }
    )
    lines.append(
        {
            "device": serial,
            "type": "status",
            "time": _z(start + dt.timedelta(minutes=100)),
            "case": "opened",
            "seq": 100_001,
        }
    )
    return "\n".join(json.dumps(line) for line in lines).encode()


@pytest.fixture(scope="session")
def seeded(server_sessions: sessionmaker[Session], server_settings: Settings) -> Seeded:
    from tagwatch.access.principal import Principal
    from tagwatch.access.roles import permissions_for
    from tagwatch.access.service import create_user
    from tagwatch.alerts import service as alerts
    from tagwatch.alerts.models import Alert
    from tagwatch.cases import service as cases
    from tagwatch.cases.refdata import seed_reference_data
    from tagwatch.db.engine import unit_of_work
    from tagwatch.telemetry.service import ingest
    from tagwatch.telemetry.sources import items_from_body

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    trail_start = now - dt.timedelta(hours=3)
    with unit_of_work(server_sessions) as session:
        seed_reference_data(session)
        for username, roles, team, unit, force in USERS:
            create_user(
                session,
                username=username,
                roles=roles,
                display_name=username.capitalize(),
                password=password_of(username),
                team_name=team,
                delivery_unit_code=unit,
                region_code="LDN" if unit else None,
                force_code=force,
            )
    with unit_of_work(server_sessions) as session:
        # A case without an order is in nobody's caseload yet: a national clerk records it.
        clerk = Principal(
            user_id=None,
            username="clerk",
            display_name="Clerk",
            roles=frozenset({"probation_manager"}),
            permissions=permissions_for(["probation_manager"]),
        )
        officer = other_officer = clerk
        person = cases.create_person(
            session, officer, _person("Seán", "O'Neil-Smith", "1990-03-27", "X123456", "0123456")
        ).person
        plain = cases.create_person(
            session, officer, _person("Zoë", "Ward", "1985-11-02", "X654321", "0654321")
        ).person
        cases.create_order(session, clerk, plain.ref, {**_order("officer1", now), "conditions": []})
        other = cases.create_person(
            session, other_officer, _person("Adam", "Brown", "1979-01-15", "Y111111", "0111111")
        ).person
        order = cases.create_order(
            session,
            officer,
            person.ref,
            {**_order("officer1", now), "reason": "licence conditions"},
        )
        other_order = cases.create_order(session, other_officer, other.ref, _order("officer5", now))
        session.flush()
        _activate_and_fit(
            session, officer, order.ref, "GPS-0001", trail_start - dt.timedelta(minutes=5)
        )
        _activate_and_fit(session, other_officer, other_order.ref, "GPS-0002", trail_start)
        ids = (person.id, person.ref, plain.id, other.id)
    with unit_of_work(server_sessions) as session:
        ingest(
            session,
            items_from_body(_feed("GPS-0001", trail_start, now)),
            channel="http",
            origin="test",
            settings=server_settings,
            received_at=now,
        )
    with unit_of_work(server_sessions) as session:
        # Alerts nobody acknowledged in time are escalated to the delivery unit's managers.
        alerts.escalate_due(session, settings=server_settings, now=now + dt.timedelta(hours=2))
    with unit_of_work(server_sessions) as session:
        found = list(
            session.scalars(select(Alert).where(Alert.person_id == ids[0]).order_by(Alert.id))
        )
    assert found, "the seeded trail raised no alert"
    tamper = [a.id for a in found if a.needs_tamper_review and a.status == "open"]
    plain_open = [a.id for a in found if not a.needs_tamper_review and a.status == "open"]
    assert len(plain_open) >= 2, (
        f"too few open alerts: {[(a.violation_type, a.status) for a in found]}"
    )
    assert len(tamper) >= 2, f"no tamper alert among {[a.violation_type for a in found]}"
    return Seeded(
        person_id=ids[0],
        person_ref=ids[1],
        person_name="Seán O'Neil-Smith",
        other_person_id=ids[3],
        plain_person_id=ids[2],
        alert_ids=[a.id for a in found],
        open_alert_ids=plain_open,
        tamper_alert_id=tamper[0],
        practitioner_tamper_alert_id=tamper[1],
        trail_start=trail_start,
        trail_end=now,
    )
