"""How the server spreads its load: connections that end, pages built a few at a time, and
`tagwatch serve --workers N` with its periodic tasks run once, in the supervisor."""

from __future__ import annotations

import asyncio
import gc
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.responses import Response
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from tagwatch.access.principal import Principal
from tagwatch.app import create_app
from tagwatch.db.engine import make_engine, make_sessionmaker
from tagwatch.settings import Settings
from tagwatch.web import keepalive
from tagwatch.web.keepalive import LOADS_ENV, KeepAliveLimitMiddleware, WorkerLoads
from tagwatch.web.portal.render import PAGE_THREADS, read_page

# --- connections end after a number of responses ------------------------------------------


async def _ok(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _closes(middleware: KeepAliveLimitMiddleware, client: tuple[str, int]) -> bool:
    """Send one request from `client`; whether its response ends the connection."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "client": client, "headers": []}
    asyncio.run(middleware(scope, receive, send))
    headers = dict(sent[0].get("headers", []))
    return headers.get(b"connection") == b"close"


@pytest.mark.backend_independent
def test_every_nth_response_on_a_connection_ends_it() -> None:
    middleware = KeepAliveLimitMiddleware(_ok, requests=3)
    one, other = ("10.0.0.1", 50001), ("10.0.0.1", 50002)
    assert [_closes(middleware, one) for _ in range(6)] == [False, False, True] * 2
    # Connections are counted apart.
    assert [_closes(middleware, other) for _ in range(3)] == [False, False, True]


@pytest.mark.backend_independent
def test_no_limit_when_set_to_zero() -> None:
    middleware = KeepAliveLimitMiddleware(_ok, requests=0)
    assert not any(_closes(middleware, ("10.0.0.1", 1)) for _ in range(50))


@pytest.mark.backend_independent
def test_counts_of_connections_gone_quiet_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keepalive, "_TRACKED", 10)
    middleware = KeepAliveLimitMiddleware(_ok, requests=100)
    for port in range(25):
        _closes(middleware, ("10.0.0.2", port))
    assert len(middleware._served) == 10


@pytest.fixture
def client_for_settings(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    configured = settings.model_copy(update={"keepalive_requests": 2})
    with TestClient(create_app(configured, engine=engine)) as test_client:
        yield test_client


def test_the_app_ends_connections_by_its_setting(client_for_settings: TestClient) -> None:
    # Wired in by the app factory from `keepalive_requests` (default 16).
    closing = [
        client_for_settings.get("/healthz").headers.get("connection") == "close" for _ in range(4)
    ]
    assert closing == [False, True, False, True]


def test_a_started_app_leaves_what_it_made_to_the_collector_no_more(
    settings: Settings, engine: Engine
) -> None:
    # Frozen objects are never walked by the collector's full passes (see `app._lifespan`).
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    with TestClient(create_app(settings, engine=engine)):
        assert gc.get_freeze_count() > 10_000


# --- a process builds a few pages at once ---------------------------------------------------


@pytest.mark.backend_independent
def test_a_process_builds_at_most_page_threads_pages_at_once(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'pages.db'}")
    app = FastAPI()
    app.state.sessionmaker = make_sessionmaker(engine)
    running = 0
    most = 0
    lock = threading.Lock()

    def build(session: Session, caller: Principal) -> Response:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return Response("built")

    caller = Principal(None, "t", "T", frozenset(), frozenset())

    async def pages() -> list[Response]:
        requests = [Request({"type": "http", "app": app, "state": {}}) for _ in range(8)]
        return await asyncio.gather(*(read_page(r, caller, build) for r in requests))

    answers = asyncio.run(pages())
    engine.dispose()
    assert [a.body for a in answers] == [b"built"] * 8
    assert most == PAGE_THREADS


# --- tagwatch serve --workers N ----------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        found.extend(int(child) for child in (task / "children").read_text().split())
    return found


@pytest.mark.backend_independent
@pytest.mark.slow
def test_serve_runs_workers_that_leave_the_periodic_tasks_to_the_supervisor(
    tmp_path: Path,
) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "TAGWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
        "TAGWATCH_VAR_DIR": str(tmp_path),
        "TAGWATCH_SECRET_KEY": "serve-test",
        "TAGWATCH_RUN_PERIODIC_TASKS": "true",
        "TAGWATCH_KEEPALIVE_REQUESTS": "2",
    }
    command = [str(Path(sys.executable).parent / "tagwatch"), "serve", "--port", str(port)]
    log = tmp_path / "server.log"
    server = subprocess.Popen(
        [*command, "--workers", "2", "--log-level", "warning"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        deadline = time.monotonic() + 60
        while True:
            try:
                connection.request("GET", "/healthz")
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start"
                connection.close()
                time.sleep(0.3)
        answers = []
        for _ in range(2):
            if answers:
                connection.request("GET", "/healthz")
            response = connection.getresponse()
            response.read()
            answers.append((response.status, response.getheader("connection")))
        assert answers == [(200, None), (200, "close")]
        workers = [
            pid
            for pid in _children(server.pid)
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        assert len(workers) == 2
        shared = set()
        for pid in workers:
            environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert b"TAGWATCH_RUN_PERIODIC_TASKS=false" in environment
            shared |= {v for v in environment if v.startswith(LOADS_ENV.encode() + b"=")}
        # Both workers share one load map, each in a slot of its own.
        (setting,) = shared
        slots = Path(setting.split(b"=", 1)[1].decode()).read_bytes()
        pids = {int.from_bytes(slots[i : i + 8], sys.byteorder) for i in range(0, len(slots), 16)}
        assert pids - {0} == set(workers)
        started = [
            json.loads(line)
            for line in log.read_text().splitlines()
            if '"periodic tasks started"' in line
        ]
        assert [entry["pid"] for entry in started] == [server.pid]
    finally:
        server.terminate()
        server.wait(timeout=30)


# --- a worker busier than the others sheds connections -------------------------------------


@pytest.mark.backend_independent
def test_the_busier_worker_sheds_and_the_others_keep_their_connections(tmp_path: Path) -> None:
    shared = tmp_path / "loads"
    busy, idle = WorkerLoads(shared), WorkerLoads(shared)
    busy.started()
    assert not busy.busier_than_the_rest()  # 1 and 0: light load keeps its connections
    for _ in range(3):
        busy.started()
    idle.started()
    assert busy.busier_than_the_rest() and not idle.busier_than_the_rest()  # 4 and 1
    busy.finished()
    assert not busy.busier_than_the_rest()  # 3 and 1: one above the mean
    busy.release()
    idle.started()
    idle.started()
    assert not idle.busier_than_the_rest()  # alone now
    assert WorkerLoads(shared)._offset == busy._offset  # its slot is free again


@pytest.mark.backend_independent
def test_a_slot_left_by_a_process_that_died_is_reused(tmp_path: Path) -> None:
    shared = tmp_path / "loads"
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True
    )
    WorkerLoads(shared)  # slot 0, this process
    dead = WorkerLoads(shared)  # slot 1, made to look like the dead process's
    with shared.open("r+b") as file:
        file.seek(dead._offset)
        file.write(int(gone.stdout).to_bytes(8, sys.byteorder) + (7).to_bytes(8, sys.byteorder))
    assert WorkerLoads(shared)._offset == dead._offset


@pytest.mark.backend_independent
def test_the_middleware_closes_connections_while_its_worker_is_busier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "loads"
    monkeypatch.setenv(LOADS_ENV, str(shared))
    middleware = KeepAliveLimitMiddleware(_ok, requests=100)
    other = WorkerLoads(shared)
    assert middleware.loads is not None
    middleware.loads.started()
    assert not _closes(middleware, ("10.0.0.3", 1))  # 2 here with this request, 0 there
    middleware.loads.started()
    assert _closes(middleware, ("10.0.0.3", 1))  # 3 here, 0 there
    other.started()
    other.started()
    assert not _closes(middleware, ("10.0.0.3", 1))  # 3 here, 2 there


@pytest.mark.backend_independent
def test_a_request_stops_counting_as_load_once_its_answer_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A live map's stream of events stays open; its worker is not busy for all that time.
    monkeypatch.setenv(LOADS_ENV, str(tmp_path / "loads"))
    seen: list[int] = []

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(middleware.loads._in_flight)  # type: ignore[union-attr]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        seen.append(middleware.loads._in_flight)  # type: ignore[union-attr]
        await send({"type": "http.response.body", "body": b"event", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    middleware = KeepAliveLimitMiddleware(stream, requests=100)
    _closes(middleware, ("10.0.0.4", 1))
    assert seen == [1, 0]
