"""Latency of the caseload page and a person's page with 25,000 people in the store.

Loads a synthetic cohort (`tagwatch.simulate.cohort.generate_cohort`, London, about 40 people
per officer) through the order import, serves the real app with uvicorn on 127.0.0.1, signs
in as a practitioner whose team holds four officers' caseloads, and has 20 concurrent users
request the caseload page and people's pages from it. Every request is a full page: scoping,
compliance at a glance, the audit entry and the template. Compares p95 with the aim of
150 ms (a ratio below 1 beats it). Prints one JSON object.

The load skips the downstream event handlers (compliance evaluation of every new order):
this measures reading pages, and evaluating 90 days of 25,000 orders with no telemetry is
a different benchmark (bench/compliance.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import socket
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import httpx
import uvicorn
from sqlalchemy import select
from sqlalchemy.orm import Session

from tagwatch import events
from tagwatch.access.principal import Principal
from tagwatch.access.roles import permissions_for
from tagwatch.access.service import create_user
from tagwatch.app import create_app
from tagwatch.cases import orderfile
from tagwatch.cases.models import Order, Person
from tagwatch.cases.refdata import seed_reference_data
from tagwatch.cases.scoping import scope_people
from tagwatch.db.engine import make_engine
from tagwatch.db.metadata import load_metadata
from tagwatch.settings import Settings
from tagwatch.simulate.cohort import generate_cohort

AIM_P95_MS = 150.0
TEAM = ("officer1", "officer2", "officer3", "officer4")
PASSWORD = "bench-password-only"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _load(engine, people: int) -> tuple[float, list[int]]:  # type: ignore[no-untyped-def]
    metadata = load_metadata()
    metadata.drop_all(engine)
    metadata.create_all(engine)
    document = generate_cohort(
        people, seed=7, start=dt.datetime.now(dt.UTC).date() - dt.timedelta(days=90)
    )
    started = time.perf_counter()
    with Session(engine) as session, mock.patch.object(events, "_handlers", dict):
        seed_reference_data(session)
        orderfile.import_document(session, document)
        for username in TEAM:
            create_user(
                session,
                username=username,
                roles=["probation_practitioner"],
                display_name=username,
                password=PASSWORD,
                team_name="Bench team",
            )
        session.commit()
    load_s = time.perf_counter() - started
    with Session(engine) as session:
        officer = session.scalar(
            select(Order.responsible_officer).where(Order.responsible_officer == TEAM[0]).limit(1)
        )
        assert officer, "the cohort gave officer1 no orders"
        team = Principal(
            user_id=None,
            username="bench",
            display_name="bench",
            roles=frozenset({"probation_practitioner"}),
            permissions=permissions_for(["probation_practitioner"]),
        )
        # The people officer1's team can see: the people their orders are for.
        visible = scope_people(select(Person.id), team).where(
            Person.id.in_(select(Order.person_id).where(Order.responsible_officer.in_(TEAM))),
            Person.restricted.is_(False),
        )
        person_ids = list(session.scalars(visible))
    return load_s, person_ids


def _serve(app) -> tuple[uvicorn.Server, threading.Thread, str]:  # type: ignore[no-untyped-def]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def _signed_in(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=60, headers={"accept": "text/html"})
    form = client.get("/sign-in").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    answer = client.post(
        "/sign-in", data={"username": TEAM[0], "password": PASSWORD, "csrf_token": token}
    )
    assert answer.status_code in (200, 303), answer.status_code
    return client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=25_000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--requests", type=int, default=20, help="per user and page")
    parser.add_argument("--database-url", help="default: a new SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = make_engine(url)
        load_s, person_ids = _load(engine, args.people)
        settings = Settings(
            environment="test",
            database_url=url,
            var_dir=Path(tmp),
            secret_key="bench",
            run_periodic_tasks=False,
            log_json=True,
        )
        server, thread, base = _serve(create_app(settings, engine=engine))
        timings: dict[str, list[float]] = {"caseload": [], "person": []}
        lock = threading.Lock()

        # One sign-in shared by every simulated user (sign-in is not what is measured).
        cookies = _signed_in(base).cookies

        def user(index: int) -> None:
            client = httpx.Client(
                base_url=base, timeout=60, headers={"accept": "text/html"}, cookies=cookies
            )
            for n in range(args.requests):
                for page, path in (
                    ("caseload", "/caseload"),
                    (
                        "person",
                        f"/people/{person_ids[(index * args.requests + n) % len(person_ids)]}",
                    ),
                ):
                    started = time.perf_counter()
                    answer = client.get(path)
                    elapsed = (time.perf_counter() - started) * 1000
                    assert answer.status_code == 200, (path, answer.status_code)
                    with lock:
                        timings[page].append(elapsed)
            client.close()

        httpx.get(base + "/caseload", cookies=cookies)  # warm the templates
        started = time.perf_counter()
        with ThreadPoolExecutor(args.users) as pool:
            list(pool.map(user, range(args.users)))
        wall_s = time.perf_counter() - started
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()

    figures = {
        name: {
            "requests": len(values),
            "p50_ms": round(statistics.median(values), 1),
            "p95_ms": round(_percentile(values, 0.95), 1),
            "ratio_p95_to_aim": round(_percentile(values, 0.95) / AIM_P95_MS, 2),
        }
        for name, values in timings.items()
    }
    print(
        json.dumps(
            {
                "benchmark": "pages",
                "backend": url.split(":", 1)[0],
                "people": args.people,
                "caseload_people_in_scope": len(person_ids),
                "concurrent_users": args.users,
                "load_s": round(load_s, 1),
                "wall_s": round(wall_s, 1),
                "aim_p95_ms": AIM_P95_MS,
                **figures,
            }
        )
    )


if __name__ == "__main__":
    main()
