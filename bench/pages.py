"""Latency of the caseload page and a person's page with 25,000 people in the store.

Loads a synthetic cohort (`tagwatch.simulate.cohort.generate_cohort`, London, about 40 people
per officer) through the order import, then serves the app as a deployment on this machine
would: `tagwatch serve --workers 2` (one worker process per core), in its own processes.
Signs in as a practitioner whose team holds four officers' caseloads and measures two loads:

- closed loop, the stated load: 20 users each requesting the caseload page and a person's page
  back to back with no pause, so 20 requests are always in flight;
- the same 20 users pausing about a second between pages (`--think-seconds`), as people
  reading a page do.

Every request is a full page: the signed session, scoping, compliance at a glance, the audit
entry (durable before the page is sent) and the template. Compares p95 with the aim of 150 ms
(a ratio below 1 beats it), reports the CPU the server (with PostgreSQL's own processes when it
is the store), this client and everything else on the machine used during each load (they all
share the same cores), and checks the audit chain holds one entry per page afterwards. Prints
one JSON object.

In the closed loop each request waits for the CPU the other 19 need, so its mean latency is at
least 20 x (CPU per request) / cores even with the machine to itself: `mean_latency_floor_ms`
states that bound from the CPU measured.

The load skips the downstream event handlers (compliance evaluation of every new order):
this measures reading pages, and evaluating 90 days of 25,000 orders with no telemetry is
a different benchmark (bench/compliance.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import re
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from serving import free_port, serve_command
from tagwatch import events
from tagwatch.access.audit import verify
from tagwatch.access.models import AuditEntry
from tagwatch.access.principal import Principal
from tagwatch.access.roles import permissions_for
from tagwatch.access.service import create_user
from tagwatch.cases import orderfile
from tagwatch.cases.models import Order, Person
from tagwatch.cases.refdata import seed_reference_data
from tagwatch.cases.scoping import scope_people
from tagwatch.db.engine import make_engine
from tagwatch.db.metadata import load_metadata
from tagwatch.simulate.cohort import generate_cohort

AIM_P95_MS = 150.0
TEAM = ("officer1", "officer2", "officer3", "officer4")
PASSWORD = "bench-password-only"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _load(engine: Engine, people: int) -> tuple[float, list[int]]:
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
    if engine.dialect.name == "postgresql":
        # A store in service has planner statistics and has been vacuumed (autovacuum does both
        # soon after a bulk load, and would otherwise do it during the measurement); without
        # statistics PostgreSQL joins a handful of rows by hashing whole tables.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
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


# --- the server, in processes of its own ----------------------------------------------------


def _serve(url: str, var_dir: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "TAGWATCH_ENVIRONMENT": "test",
        "TAGWATCH_DATABASE_URL": url,
        "TAGWATCH_VAR_DIR": str(var_dir),
        "TAGWATCH_SECRET_KEY": "bench",
        "TAGWATCH_RUN_PERIODIC_TASKS": "false",
        "TAGWATCH_LOG_JSON": "true",
    }
    command = serve_command(port, workers)
    log = (var_dir / "server.log").open("wb")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return server, base
        except httpx.TransportError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError("the server did not start within 60 s")


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


# --- CPU: the server's processes, this client, and the whole machine ------------------------


def _descendants(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = (task / "children").read_text().split()
        for child in children:
            found.extend(_descendants(int(child)))
    return found


def _process_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def _machine_busy_s() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


@dataclass
class CpuSample:
    wall: float
    server: dict[int, float]
    database: dict[int, float]
    client: float
    machine: float


def _database_pids(engine: Engine) -> list[int]:
    """PostgreSQL's server processes for this database (SQLite runs inside the workers)."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.connect() as connection:
        query = text(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [int(pid) for pid in connection.scalars(query)]


def _sample(server_pid: int, engine: Engine) -> CpuSample:
    times = os.times()
    return CpuSample(
        wall=time.perf_counter(),
        server={pid: _process_cpu_s(pid) for pid in _descendants(server_pid)},
        database={pid: _process_cpu_s(pid) for pid in _database_pids(engine)},
        client=times.user + times.system,
        machine=_machine_busy_s(),
    )


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(after[pid] - cpu for pid, cpu in before.items() if pid in after)


def _cpu_report(before: CpuSample, after: CpuSample, requests: int) -> dict[str, Any]:
    wall = after.wall - before.wall
    server = _spent(before.server, after.server)
    database = _spent(before.database, after.database)
    client = after.client - before.client
    machine = after.machine - before.machine
    cores = os.cpu_count() or 1
    return {
        "machine_cores": cores,
        "server_cpu_s": round(server, 2),
        "database_server_cpu_s": round(database, 2),
        "client_cpu_s": round(client, 2),
        "other_processes_cpu_s": round(max(machine - server - database - client, 0.0), 2),
        "machine_busy_share": round(machine / (wall * cores), 2),
        "serving_cpu_ms_per_request": round(1000 * (server + database) / requests, 1),
    }


# --- the simulated users -------------------------------------------------------------------


def _signed_in_cookie(base: str) -> str:
    with httpx.Client(base_url=base, timeout=60, headers={"accept": "text/html"}) as client:
        form = client.get("/sign-in").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
        answer = client.post(
            "/sign-in", data={"username": TEAM[0], "password": PASSWORD, "csrf_token": token}
        )
        assert answer.status_code in (200, 303), answer.status_code
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


def _run_users(
    base: str,
    cookie: str,
    person_ids: list[int],
    users: int,
    requests: int,
    think_s: float,
    on_sample: Callable[[], CpuSample],
) -> dict[str, Any]:
    """Each user asks for the caseload then a person, `requests` times, pausing `think_s`.

    With a pause, users start at random moments within one pause and pause between half and
    one and a half times `think_s` (seeded, so runs compare), as people reading pages do:
    otherwise every user would ask at the same instant, round after round.
    """
    host, port = base.removeprefix("http://").split(":")
    timings: dict[str, list[float]] = {"caseload": [], "person": []}
    lock = threading.Lock()
    headers = {"accept": "text/html", "cookie": cookie}

    def user(index: int) -> None:
        pace = random.Random(index)
        # A plain keep-alive connection: the client should cost the shared cores little.
        connection = http.client.HTTPConnection(host, int(port), timeout=120)
        if think_s:
            time.sleep(pace.uniform(0, think_s))
        for n in range(requests):
            person = person_ids[(index * requests + n) % len(person_ids)]
            for page, path in (("caseload", "/caseload"), ("person", f"/people/{person}")):
                started = time.perf_counter()
                connection.request("GET", path, headers=headers)
                answer = connection.getresponse()
                answer.read()
                elapsed = (time.perf_counter() - started) * 1000
                assert answer.status == 200, (path, answer.status)
                with lock:
                    timings[page].append(elapsed)
                if think_s:
                    time.sleep(think_s * pace.uniform(0.5, 1.5))
        connection.close()

    before = on_sample()
    with ThreadPoolExecutor(users) as pool:
        list(pool.map(user, range(users)))
    after = on_sample()
    total = sum(len(v) for v in timings.values())
    wall = after.wall - before.wall
    return {
        "concurrent_users": users,
        "think_s": think_s,
        "requests": total,
        "wall_s": round(wall, 1),
        "throughput_per_s": round(total / wall, 1),
        **{
            name: {
                "requests": len(values),
                "p50_ms": round(statistics.median(values), 1),
                "p95_ms": round(_percentile(values, 0.95), 1),
                "ratio_p95_to_aim": round(_percentile(values, 0.95) / AIM_P95_MS, 2),
            }
            for name, values in timings.items()
        },
        "cpu": _cpu_report(before, after, total),
    }


def _audit_check(engine: Engine) -> dict[str, Any]:
    with Session(engine) as session:
        check = verify(session)
        views = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action.in_(("caseload.view", "person.view")))
        )
    return {"chain_ok": check.ok, "entries": check.checked, "page_views_logged": views}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=25_000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--requests", type=int, default=40, help="per user and page")
    parser.add_argument("--think-seconds", type=float, default=1.0)
    parser.add_argument("--think-requests", type=int, default=10, help="per user and page")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--database-url", help="default: a new SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = make_engine(url)
        load_s, person_ids = _load(engine, args.people)
        server, base = _serve(url, Path(tmp), args.workers)
        try:
            cookie = _signed_in_cookie(base)
            sample = lambda: _sample(server.pid, engine)  # noqa: E731
            # Warm every worker: templates compiled, connections open, statements cached.
            warm = _run_users(base, cookie, person_ids, args.workers * 4, 2, 0.0, sample)
            closed = _run_users(base, cookie, person_ids, args.users, args.requests, 0.0, sample)
            paced = _run_users(
                base,
                cookie,
                person_ids,
                args.users,
                args.think_requests,
                args.think_seconds,
                sample,
            )
        finally:
            _stop(server)
        cores = os.cpu_count() or 1
        closed["mean_latency_floor_ms"] = round(
            args.users * closed["cpu"]["serving_cpu_ms_per_request"] / cores, 1
        )
        audit = _audit_check(engine)
        audit["page_views_requested"] = sum(r["requests"] for r in (warm, closed, paced))
        engine.dispose()

    print(
        json.dumps(
            {
                "benchmark": "pages",
                "backend": url.split(":", 1)[0].split("+")[0],
                "people": args.people,
                "caseload_people_in_scope": len(person_ids),
                "server": f"tagwatch serve --workers {args.workers}, on the same machine",
                "load_s": round(load_s, 1),
                "aim_p95_ms": AIM_P95_MS,
                "closed_loop": closed,
                "with_think_time": paced,
                "audit": audit,
            }
        )
    )


if __name__ == "__main__":
    main()
