"""Ingestion end to end, compliance evaluation and alerts included. Prints one JSON object.

The store holds a synthetic cohort loaded through the order import: people on orders with
curfews and exclusion and inclusion zones, wearing GPS, RF and alcohol tags. The feed is the
simulator's for that cohort over the `DAYS` days up to the start of the run, with the breaches
it injects (counted from its ground truth). Every figure includes what a record causes in its
transaction: raw storage, evaluation of the touched allocations, violations, alerts and the
in-app outbox.

- file_sqlite / file_postgresql: `store_file` (the path of `tagwatch ingest FILE`) into a
  store holding the cohort: records per second of wall time and per CPU second (of the storing
  process, and with the reader process that parses a large file on the other core included),
  what was derived, and how the storing process's time divides between telemetry, compliance
  and alerts. PostgreSQL is
  TAGWATCH_BENCH_POSTGRES_URL (default the database `tw_ingest_bench` on 127.0.0.1).
- http_sqlite: a uvicorn server in a subprocess; one client posts the feed as NDJSON batches
  of `HTTP_BATCH` records with a device gateway's token (the answer comes after the commit).
- alert_latency: the same server afterwards. Probes drive GPS wearers into their exclusion
  zones: two fixes in the zone in one request, then the fix that confirms the breach alone in
  the next. Latency is from sending that request to its answer, which the server gives only
  after the transaction holding the record, the violation, the alert and its outbox message
  has committed (checked: the outbox row is visible from another connection at once); also
  server side, from the batch's receipt time to the outbox row's creation. Measured idle and
  under background load: every other wearer's device reports each second, one batch a second
  touching every other allocation, the shape of national load (1,000 fixes a second from as
  many devices) at the cohort's scale.
- machine: the run shares a small machine; each phase reports the CPU seconds other
  processes used meanwhile (from /proc/stat), so contention is measured, not guessed.

Ratios compare with the aims (100,000 records/s from a file into SQLite, 20,000/s over HTTP,
p99 alert latency under 1 s) and the national load (1,000 fixes/s).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import shapely
from sqlalchemy import Engine, create_engine, make_url, select, text

from serving import free_port, serve_command
from tagwatch.db.engine import make_engine, make_sessionmaker, unit_of_work
from tagwatch.db.metadata import load_metadata
from tagwatch.settings import Settings
from tagwatch.telemetry.files import store_file

AIM_FILE_SQLITE = 100_000
AIM_HTTP = 20_000
AIM_ALERT_P99_MS = 1_000
NATIONAL_LOAD = 1_000
PEOPLE = int(os.environ.get("TAGWATCH_BENCH_PEOPLE", "200"))
DAYS = float(os.environ.get("TAGWATCH_BENCH_DAYS", "3"))
SEED = 11
HTTP_BATCH = 5_000
PROBE_WEARERS = 40
PROBE_CYCLES = 5
FIX_STEP_S = 10  # between a probe wearer's fixes: under the speed limit for the moves
# The feed ends this long before the run starts, and probes begin REACH after its end: time
# for a wearer to reach the zone at a plausible speed, with every probe fix in the past.
HISTORY_LAG = dt.timedelta(minutes=20)
REACH = dt.timedelta(minutes=15)
BACKGROUND_PERIOD_S = 1.0
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/tw_ingest_bench"


# --- measuring -------------------------------------------------------------------------------


def _machine_busy_s() -> float:
    """CPU seconds every process on the machine has used (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _process_cpu_s(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    """CPU seconds of this process's finished children: the file channel's reader process."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Meter:
    """Wall time, this process's CPU time, a server's CPU time and everyone else's."""

    server_pid: int | None = None

    def __enter__(self) -> Meter:
        self._wall = time.perf_counter()
        self._cpu = time.process_time()
        self._children = _children_cpu_s()
        self._busy = _machine_busy_s()
        self._server = _process_cpu_s(self.server_pid) if self.server_pid else 0.0
        self._load = os.getloadavg()[0]
        return self

    def __exit__(self, *_exc: object) -> None:
        self.wall_s = time.perf_counter() - self._wall
        self.cpu_s = time.process_time() - self._cpu
        self.children_cpu_s = _children_cpu_s() - self._children
        self.server_cpu_s = (
            _process_cpu_s(self.server_pid) - self._server if self.server_pid else 0.0
        )
        ours = self.cpu_s + self.children_cpu_s + self.server_cpu_s
        self.others_cpu_s = max(0.0, _machine_busy_s() - self._busy - ours)
        self.load_before = self._load
        self.load_after = os.getloadavg()[0]

    def as_dict(self) -> dict[str, Any]:
        cores = os.cpu_count() or 1
        return {
            "wall_s": round(self.wall_s, 3),
            "bench_cpu_s": round(self.cpu_s, 3),
            "reader_process_cpu_s": round(self.children_cpu_s, 3),
            **({"server_cpu_s": round(self.server_cpu_s, 3)} if self.server_pid else {}),
            "other_processes_cpu_s": round(self.others_cpu_s, 3),
            "other_processes_cores_busy": round(self.others_cpu_s / self.wall_s, 2),
            "cores": cores,
            "load_average_1m": [round(self.load_before, 2), round(self.load_after, 2)],
        }


class HandlerClock:
    """Time spent in compliance evaluation (alerts included) and in the alerts handler."""

    def __init__(self) -> None:
        self.compliance_s = 0.0
        self.alerts_s = 0.0

    def install(self) -> None:
        import tagwatch.alerts.handlers as alerts_handlers
        import tagwatch.events
        from tagwatch.compliance.handlers import PendingEvaluation

        run = PendingEvaluation.run
        sync = alerts_handlers.on_violations_changed

        def timed_run(work: PendingEvaluation, session: Any) -> None:
            started = time.process_time()
            try:
                run(work, session)
            finally:
                self.compliance_s += time.process_time() - started

        def timed_sync(session: Any, event: Any) -> None:
            started = time.process_time()
            try:
                sync(session, event)
            finally:
                self.alerts_s += time.process_time() - started

        PendingEvaluation.run = timed_run  # type: ignore[method-assign]
        alerts_handlers.HANDLERS = {
            event_type: [timed_sync if h is sync else h for h in handlers]
            for event_type, handlers in alerts_handlers.HANDLERS.items()
        }
        tagwatch.events._handlers.cache_clear()

    def split(self, cpu_s: float) -> dict[str, float]:
        return {
            "telemetry_cpu_s": round(cpu_s - self.compliance_s, 3),
            "compliance_cpu_s": round(self.compliance_s - self.alerts_s, 3),
            "alerts_cpu_s": round(self.alerts_s, 3),
        }


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


# --- the cohort, its feed and the stores ---------------------------------------------------------


def simulated_feed(
    directory: Path, end: dt.datetime
) -> tuple[dict[str, Any], Path, dict[str, Any]]:
    """The cohort and its NDJSON feed over the DAYS days before `end`; feed facts."""
    from tagwatch.simulate.cohort import generate_cohort
    from tagwatch.simulate.devices import simulate_feed
    from tagwatch.simulate.writers import write_ndjson

    start = end - dt.timedelta(days=DAYS)
    cohort = generate_cohort(PEOPLE, SEED, start.date())
    truth: list[dict[str, Any]] = []
    path = directory / "feed.ndjson"
    records = write_ndjson(simulate_feed(cohort, start, DAYS, SEED, truth), path)
    with path.open("rb") as lines:
        fixes = sum(1 for line in lines if b'"type":"gps"' in line)
    injected = Counter(entry["kind"] for entry in truth if entry["kind"] != "duplicate")
    facts = {
        "records": records,
        "gps_fixes": fixes,
        "people": PEOPLE,
        "days": DAYS,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "injected_by_simulator": dict(sorted(injected.items())),
    }
    return cohort, path, facts


def fresh_store(url: str) -> None:
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    load_metadata().create_all(engine)
    engine.dispose()


def load_cohort(url: str, cohort: dict[str, Any]) -> dict[str, Any]:
    """A fresh store with reference data and the cohort (through the order import, whose
    events evaluate every allocation as in service)."""
    from tagwatch.cases.orderfile import import_document
    from tagwatch.cases.refdata import seed_reference_data

    fresh_store(url)
    engine = make_engine(url)
    factory = make_sessionmaker(engine, Settings(database_url=url, log_json=True))
    with Meter() as meter:
        with unit_of_work(factory) as session:
            seed_reference_data(session)
        with unit_of_work(factory) as session:
            result = import_document(session, cohort)
    engine.dispose()
    return {"import_s": round(meter.wall_s, 3), "result": str(result)}


def ensure_postgres_database(url: str) -> None:
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
        ).first()
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def copy_sqlite(source: Path, target: Path) -> str:
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{source}{suffix}").exists():
            shutil.copy(f"{source}{suffix}", f"{target}{suffix}")
    return f"sqlite:///{target}"


def derived(engine: Engine) -> dict[str, int]:
    """What the store derived: violations (standing, confirmed), alerts, outbox messages."""
    queries = {
        "violations_standing": "SELECT count(*) FROM violation WHERE withdrawn_at IS NULL",
        "violations_confirmed": (
            "SELECT count(*) FROM violation WHERE withdrawn_at IS NULL AND status = 'confirmed'"
        ),
        "alerts": "SELECT count(*) FROM alert",
        "outbox_messages": "SELECT count(*) FROM outbox_message",
    }
    with engine.connect() as connection:
        return {
            name: int(connection.execute(text(sql)).scalar_one()) for name, sql in queries.items()
        }


# --- the file channel ---------------------------------------------------------------------------


def file_rate(url: str, path: Path, clock: HandlerClock) -> dict[str, Any]:
    settings = Settings(database_url=url, log_json=True)
    engine = make_engine(url)
    session = make_sessionmaker(engine, settings)()
    before = (clock.compliance_s, clock.alerts_s)
    with Meter() as meter:
        result = store_file(session, path, settings=settings)
    session.close()
    split = HandlerClock()
    split.compliance_s = clock.compliance_s - before[0]
    split.alerts_s = clock.alerts_s - before[1]
    answer = {
        "records": result.received,
        "accepted": result.accepted,
        "duplicate": result.duplicate,
        "rejected": result.rejected,
        "implausible": result.implausible,
        "records_per_s": round(result.received / meter.wall_s),
        "records_per_cpu_s": round(result.received / meter.cpu_s),
        "records_per_cpu_s_reader_included": round(
            result.received / (meter.cpu_s + meter.children_cpu_s)
        ),
        **split.split(meter.cpu_s),
        **derived(engine),
        "conditions": meter.as_dict(),
    }
    engine.dispose()
    return answer


# --- the HTTP channel ---------------------------------------------------------------------------


def gateway_token(url: str) -> str:
    from tagwatch.access.service import create_token, create_user

    engine = make_engine(url)
    with unit_of_work(make_sessionmaker(engine)) as session:
        user = create_user(session, username="bench-gateway", roles=["device_gateway"])
        secret = create_token(session, user, "bench", ["telemetry:ingest"]).secret
    engine.dispose()
    return secret


def server(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TAGWATCH_DATABASE_URL": url,
        "TAGWATCH_RUN_PERIODIC_TASKS": "false",
        "TAGWATCH_LOG_JSON": "true",
    }
    command = serve_command(port)
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not start")


def batches(path: Path, size: int) -> Iterator[bytes]:
    batch: list[bytes] = []
    with path.open("rb") as lines:
        for line in lines:
            batch.append(line)
            if len(batch) == size:
                yield b"".join(batch)
                batch = []
    if batch:
        yield b"".join(batch)


def http_rate(http: httpx.Client, endpoint: str, path: Path, pid: int, url: str) -> dict[str, Any]:
    totals: Counter[str] = Counter()
    with Meter(server_pid=pid) as meter:
        for body in batches(path, HTTP_BATCH):
            answer = http.post(endpoint, content=body)
            answer.raise_for_status()
            totals.update({k: v for k, v in answer.json().items() if isinstance(v, int)})
    engine = make_engine(url)
    found = derived(engine)
    engine.dispose()
    return {
        "records": totals["received"],
        "accepted": totals["accepted"],
        "duplicate": totals["duplicate"],
        "records_per_s": round(totals["received"] / meter.wall_s),
        "records_per_server_cpu_s": round(totals["received"] / meter.server_cpu_s),
        "batch_records": HTTP_BATCH,
        "clients": 1,
        **found,
        "conditions": meter.as_dict(),
    }


# --- alert latency ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """A GPS wearer with an exclusion zone: a point well inside it and one just outside."""

    serial: str
    allocation_id: int
    inside: tuple[float, float]  # lon, lat
    outside: tuple[float, float]


def probe_wearers(url: str, count: int) -> tuple[list[Probe], list[tuple[str, str, Any]]]:
    """Probe wearers, and every other device currently allocated with how it reports:
    (serial, record type, last position for GPS)."""
    from tagwatch.cases.models import Allocation, Condition, Device
    from tagwatch.cases.zones import zone_geometry_bng
    from tagwatch.geo.projection import to_wgs84
    from tagwatch.telemetry.models import GpsFix

    engine = make_engine(url)
    probes: list[Probe] = []
    others: list[tuple[str, str, Any]] = []
    with make_sessionmaker(engine)() as session:
        allocated = session.execute(
            select(Allocation.id, Allocation.order_id, Device.serial, Device.type)
            .join(Device, Device.id == Allocation.device_id)
            .where(Allocation.removed_at.is_(None))
            .order_by(Allocation.id)
        ).all()
        # Zones in force at all times (a scheduled zone may be off when probed).
        zones = {
            order_id: geometry
            for order_id, geometry, schedule in session.execute(
                select(Condition.order_id, Condition.geometry, Condition.schedule).where(
                    Condition.type == "exclusion_zone"
                )
            )
            if not schedule
        }
        for allocation_id, order_id, serial, kind in allocated:
            if kind == "gps_tag" and order_id in zones and len(probes) < count:
                points = _inside_and_out(zone_geometry_bng(zones[order_id]))
                if points is not None:
                    lon, lat = to_wgs84(*points)
                    probes.append(Probe(serial, allocation_id, (lon[0], lat[0]), (lon[1], lat[1])))
                    continue
            if kind == "gps_tag":
                last = session.execute(
                    select(GpsFix.lon, GpsFix.lat)
                    .where(GpsFix.device_serial == serial, GpsFix.implausible_reason.is_(None))
                    .order_by(GpsFix.t_ms.desc())
                    .limit(1)
                ).first()
                if last is not None:
                    others.append((serial, "gps", (last.lon, last.lat)))
            elif kind != "non_fitted_device":
                others.append((serial, "status", None))
    engine.dispose()
    return probes, others


def _inside_and_out(zone: Any) -> tuple[list[float], list[float]] | None:
    """A point well inside a zone and one 60 m outside its nearest edge (BNG metres, as
    eastings and northings), or None when the zone does not suit: too thin, or so large
    that the move out would be an implausible speed."""
    if zone.geom_type != "Polygon":
        return None
    centre = zone.representative_point()
    depth = zone.exterior.distance(centre)
    if not 30 <= depth <= 500:
        return None
    inner, edge = shapely.get_coordinates(shapely.shortest_line(centre, zone.exterior))
    outward = (edge - inner) / depth
    beyond = edge + outward * 60.0
    if zone.contains(shapely.Point(beyond)):
        return None
    return [float(inner[0]), float(beyond[0])], [float(inner[1]), float(beyond[1])]


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _fix(serial: str, moment: dt.datetime, where: tuple[float, float]) -> bytes:
    return orjson.dumps(
        {
            "device": serial,
            "type": "gps",
            "time": _stamp(moment),
            "lon": round(float(where[0]), 7),
            "lat": round(float(where[1]), 7),
            "accuracy_m": 5.0,
            "source": "gnss",
        }
    )


class Background:
    """Each second, one batch with a record from every other allocated device, at now."""

    def __init__(self, http: httpx.Client, endpoint: str, devices: list[tuple[str, str, Any]]):
        self._http, self._endpoint, self._devices = http, endpoint, devices
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-background", daemon=True)
        self.seconds: list[float] = []
        self.records = 0

    def _body(self, moment: dt.datetime) -> bytes:
        lines = []
        for serial, kind, where in self._devices:
            if kind == "gps":
                lines.append(_fix(serial, moment, where))
            else:
                lines.append(
                    orjson.dumps(
                        {
                            "device": serial,
                            "type": "status",
                            "time": _stamp(moment),
                            "battery_pct": 80,
                        }
                    )
                )
        return b"\n".join(lines)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            moment = dt.datetime.now(dt.UTC).replace(microsecond=0)
            answer = self._http.post(self._endpoint, content=self._body(moment))
            answer.raise_for_status()
            spent = time.perf_counter() - started
            self.seconds.append(spent)
            self.records += len(self._devices)
            self._stop.wait(max(0.0, BACKGROUND_PERIOD_S - spent))

    def __enter__(self) -> Background:
        self._thread.start()
        time.sleep(2 * BACKGROUND_PERIOD_S)  # let it reach its steady state
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def summary(self, wall_s: float) -> dict[str, Any]:
        return {
            "devices_per_batch": len(self._devices),
            "batches": len(self.seconds),
            "records_per_s": round(self.records / wall_s, 1),
            "batch_p50_ms": round(statistics.median(self.seconds) * 1000, 1),
            "batch_p99_ms": round(percentile(self.seconds, 0.99) * 1000, 1),
            # One record per allocation per batch: how many allocations a second of server
            # work evaluates, against the national load's 1,000 devices reporting a second.
            "allocation_evaluations_per_busy_s": round(self.records / sum(self.seconds), 1),
            "ratio_to_national_1000": round(self.records / sum(self.seconds) / NATIONAL_LOAD, 3),
        }


class Prober:
    """Drives probe wearers into their zones and times the request that confirms each breach."""

    def __init__(
        self, http: httpx.Client, endpoint: str, url: str, probes: list[Probe], first: dt.datetime
    ):
        self._http, self._endpoint, self._probes = http, endpoint, probes
        self._engine = make_engine(url)
        self._clock = first  # each wearer's fixes follow this clock, FIX_STEP_S apart

    def _post(self, lines: list[bytes]) -> float:
        started = time.perf_counter()
        answer = self._http.post(self._endpoint, content=b"\n".join(lines))
        spent = time.perf_counter() - started
        answer.raise_for_status()
        return spent

    def run(self, cycles: int) -> dict[str, Any]:
        client_ms: list[float] = []
        server_ms: list[float] = []
        missing = 0
        for _ in range(cycles):
            step = [self._clock + dt.timedelta(seconds=FIX_STEP_S * k) for k in range(4)]
            self._clock += dt.timedelta(seconds=FIX_STEP_S * 4)
            wait = (step[-1] - dt.datetime.now(dt.UTC)).total_seconds()
            if wait > 0:  # records from the future would be implausible
                time.sleep(wait)
            for probe in self._probes:
                self._post([_fix(probe.serial, step[k], probe.inside) for k in (0, 1)])
                client_ms.append(self._post([_fix(probe.serial, step[2], probe.inside)]) * 1000)
                found = self._outbox_latency(probe, step[0], step[2])
                if found is None:
                    missing += 1
                else:
                    server_ms.append(found)
                self._post([_fix(probe.serial, step[3], probe.outside)])
        return {
            "breaches_confirmed": len(client_ms),
            "alerts_not_in_outbox_at_answer": missing,
            "client_p50_ms": round(statistics.median(client_ms), 1),
            "client_p99_ms": round(percentile(client_ms, 0.99), 1),
            "client_max_ms": round(max(client_ms), 1),
            "server_receipt_to_outbox_p50_ms": round(statistics.median(server_ms), 1)
            if server_ms
            else None,
            "server_receipt_to_outbox_p99_ms": round(percentile(server_ms, 0.99), 1)
            if server_ms
            else None,
        }

    def _outbox_latency(
        self, probe: Probe, entered: dt.datetime, confirmed: dt.datetime
    ) -> float | None:
        """From the receipt of the confirming fix's batch to its alert's outbox message (ms),
        read from another connection right after the answer; None when it is not there."""
        from tagwatch.alerts.models import Alert, OutboxMessage
        from tagwatch.compliance.models import Violation
        from tagwatch.telemetry.epoch import to_ms
        from tagwatch.telemetry.models import GpsFix, IngestBatch

        with make_sessionmaker(self._engine)() as session:
            received = session.execute(
                select(IngestBatch.received_at)
                .join(GpsFix, GpsFix.batch_id == IngestBatch.id)
                .where(GpsFix.dedupe_key == f"{probe.serial}|gps|{to_ms(confirmed)}")
            ).scalar_one_or_none()
            created = session.execute(
                select(OutboxMessage.created_at)
                .join(Alert, Alert.id == OutboxMessage.alert_id)
                .join(Violation, Violation.id == Alert.violation_id)
                .where(
                    Violation.allocation_id == probe.allocation_id,
                    Violation.rule_id == "zone.exclusion.entry",
                    Violation.start == entered,
                )
            ).scalar()
        if received is None or created is None:
            return None
        return (created - received).total_seconds() * 1000

    def close(self) -> None:
        self._engine.dispose()


def alert_latency(
    http: httpx.Client, endpoint: str, url: str, pid: int, history_end: dt.datetime
) -> dict[str, Any]:
    probes, others = probe_wearers(url, PROBE_WEARERS)
    if not probes:
        return {"error": "no GPS wearer in the cohort has an exclusion zone that suits a probe"}
    prober = Prober(http, endpoint, url, probes, history_end + REACH)
    try:
        with Meter(server_pid=pid) as idle_meter:
            idle = prober.run(PROBE_CYCLES)
        background = Background(http, endpoint, others)
        with Meter(server_pid=pid) as loaded_meter, background:
            loaded = prober.run(PROBE_CYCLES)
    finally:
        prober.close()
    return {
        "probe_wearers": len(probes),
        "idle": {**idle, "conditions": idle_meter.as_dict()},
        "under_background_load": {
            **loaded,
            "background": background.summary(loaded_meter.wall_s),
            "conditions": loaded_meter.as_dict(),
        },
    }


def http_phases(path: Path, base: Path, tmp: Path, history_end: dt.datetime) -> dict[str, Any]:
    url = copy_sqlite(base, tmp / "http.db")
    token = gateway_token(url)
    port = free_port()
    process = server(url, port)
    endpoint = f"http://127.0.0.1:{port}/api/v1/telemetry"
    headers = {"authorization": f"Bearer {token}", "content-type": "application/x-ndjson"}
    try:
        with httpx.Client(headers=headers, timeout=300) as http:
            rate = http_rate(http, endpoint, path, process.pid, url)
            latency = alert_latency(http, endpoint, url, process.pid, history_end)
    finally:
        process.terminate()
        process.wait(30)
    return {"rate": rate, "latency": latency}


# --- the report ---------------------------------------------------------------------------------


def _ratios(rate: float, aim: float) -> dict[str, float]:
    return {
        f"ratio_to_aim_{aim}": round(rate / aim, 3),
        "ratio_to_national_1000": round(rate / NATIONAL_LOAD, 1),
    }


def main() -> None:
    postgres = os.environ.get("TAGWATCH_BENCH_POSTGRES_URL", DEFAULT_POSTGRES)
    clock = HandlerClock()
    clock.install()
    started = time.perf_counter()
    end = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - HISTORY_LAG
    with tempfile.TemporaryDirectory(prefix="tagwatch-bench-") as directory:
        tmp = Path(directory)
        cohort, feed, facts = simulated_feed(tmp, end)
        base = tmp / "base.db"
        cohort_sqlite = load_cohort(f"sqlite:///{base}", cohort)
        sqlite = file_rate(copy_sqlite(base, tmp / "file.db"), feed, clock)
        try:
            ensure_postgres_database(postgres)
            cohort_pg = load_cohort(postgres, cohort)
            pg: dict[str, Any] = {**file_rate(postgres, feed, clock), "cohort_load": cohort_pg}
        except Exception as exc:  # reported, not hidden: the figure is missing, with why
            pg = {"error": f"{type(exc).__name__}: {exc}"}
        http = http_phases(feed, base, tmp, end)
    latency = http["latency"]
    if "idle" in latency:
        latency["p99_idle_ratio_to_aim_1000ms"] = round(
            latency["idle"]["client_p99_ms"] / AIM_ALERT_P99_MS, 3
        )
        latency["p99_loaded_ratio_to_aim_1000ms"] = round(
            latency["under_background_load"]["client_p99_ms"] / AIM_ALERT_P99_MS, 3
        )
    print(
        json.dumps(
            {
                "benchmark": "telemetry ingestion end to end (evaluation and alerts included)",
                "feed": facts,
                "cohort_load_sqlite": cohort_sqlite,
                "file_sqlite": {**sqlite, **_ratios(sqlite["records_per_s"], AIM_FILE_SQLITE)},
                "file_postgresql": {
                    **pg,
                    **(
                        _ratios(pg["records_per_s"], AIM_FILE_SQLITE)
                        if "records_per_s" in pg
                        else {}
                    ),
                },
                "http_sqlite": {
                    **http["rate"],
                    **_ratios(http["rate"]["records_per_s"], AIM_HTTP),
                },
                "alert_latency_http_sqlite": latency,
                "total_wall_s": round(time.perf_counter() - started, 1),
                "machine": {"cpus": os.cpu_count(), "load_average_1m": os.getloadavg()[0]},
            }
        )
    )


if __name__ == "__main__":
    main()
