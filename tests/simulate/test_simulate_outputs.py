from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from tagwatch.cli import app
from tagwatch.simulate.cohort import generate_cohort
from tagwatch.simulate.devices import simulate_feed
from tagwatch.simulate.live import feed_live
from tagwatch.simulate.writers import write_gps_csv, write_ndjson
from tagwatch.telemetry.feed import Fix, csv_columns, parse_csv_row, parse_line

START = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def cohort() -> dict[str, Any]:
    return generate_cohort(25, 4, START.date())


def test_ndjson_plain_and_gzipped_hold_the_records(cohort: dict[str, Any], tmp_path: Path) -> None:
    records = list(simulate_feed(cohort, START, 0.2, 4))
    plain, zipped = tmp_path / "feed.ndjson", tmp_path / "feed.ndjson.gz"
    assert write_ndjson(iter(records), plain) == len(records)
    assert write_ndjson(iter(records), zipped) == len(records)
    assert gzip.decompress(zipped.read_bytes()) == plain.read_bytes()
    lines = plain.read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == records
    assert all(not isinstance(parse_line(line), list) for line in lines)


def test_gps_csv_is_the_feed_csv_form(cohort: dict[str, Any], tmp_path: Path) -> None:
    records = list(simulate_feed(cohort, START, 0.2, 4))
    path = tmp_path / "feed.csv"
    count = write_gps_csv(iter(records), path)
    gps = [r for r in records if r["type"] == "gps"]
    assert count == len(gps) > 0
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["device", "time", "lat", "lon", "accuracy_m", "seq"]
    columns = csv_columns(rows[0])
    assert isinstance(columns, dict)
    fixes = [parse_csv_row(columns, row) for row in rows[1:]]
    assert all(isinstance(fix, Fix) for fix in fixes)
    assert [(f.lat, f.lon, f.seq) for f in fixes] == [(r["lat"], r["lon"], r["seq"]) for r in gps]


def test_cli_cohort_feed_and_run(tmp_path: Path) -> None:
    runner = CliRunner()
    cohort_path = tmp_path / "cohort.json"
    result = runner.invoke(
        app,
        [
            "simulate",
            "cohort",
            "--people",
            "12",
            "--seed",
            "2",
            "--start",
            "2026-11-23",
            "--out",
            str(cohort_path),
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(cohort_path.read_text())
    assert document == json.loads(json.dumps(generate_cohort(12, 2, dt.date(2026, 11, 23))))

    feed_path = tmp_path / "feed.ndjson.gz"
    result = runner.invoke(
        app,
        [
            "simulate",
            "feed",
            "--cohort",
            str(cohort_path),
            "--days",
            "0.1",
            "--seed",
            "2",
            "--start",
            "2026-11-23",
            "--out",
            str(feed_path),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = gzip.decompress(feed_path.read_bytes()).splitlines()
    expected = list(simulate_feed(document, START, 0.1, 2))
    assert [orjson.loads(line) for line in lines] == expected
    assert (tmp_path / "feed.scenario.ndjson").exists()

    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "simulate",
            "run",
            "--people",
            "8",
            "--days",
            "0.05",
            "--start",
            "2026-11-23",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {
        "cohort.json",
        "feed.ndjson.gz",
        "feed.scenario.ndjson",
    }


class _Telemetry(BaseHTTPRequestHandler):
    """A stand-in for the server's telemetry endpoint that checks each request."""

    batches: list[list[dict[str, Any]]]
    problems: list[str]

    def do_POST(self) -> None:
        if self.path != "/api/v1/telemetry":
            self.problems.append(f"path {self.path}")
        if self.headers["Authorization"] != "Bearer device-token":
            self.problems.append("authorisation")
        if self.headers["Content-Type"] != "application/x-ndjson":
            self.problems.append("content type")
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.batches.append([orjson.loads(line) for line in body.splitlines()])
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"accepted": true}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def telemetry_server() -> Iterator[tuple[str, type[_Telemetry]]]:
    handler = type("Handler", (_Telemetry,), {"batches": [], "problems": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_live_replay_posts_a_second_of_records_per_request(
    cohort: dict[str, Any], telemetry_server: tuple[str, type[_Telemetry]]
) -> None:
    url, handler = telemetry_server
    waits: list[float] = []
    sent = feed_live(
        cohort,
        url,
        "device-token",
        speed=1_000_000.0,
        start=START,
        days=0.05,
        seed=4,
        sleep=waits.append,
    )
    assert handler.problems == []
    received = [r for batch in handler.batches for r in batch]
    assert sent == len(received) > 0
    assert sorted(map(json.dumps, received)) == sorted(
        map(json.dumps, simulate_feed(cohort, START, 0.05, 4))
    )
    assert len(handler.batches) > 10
    assert all(w < 1.0 for w in waits)  # a million times faster: never a real pause


def test_live_refuses_a_speed_of_zero(cohort: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="speed"):
        feed_live(cohort, "http://127.0.0.1:9", "t", speed=0)


def test_live_replay_is_accepted_by_the_telemetry_endpoint(client: Any) -> None:
    # The app's own test client is an httpx client: the replay goes through the real route.
    cohort = generate_cohort(6, 8, START.date())
    answers: list[dict[str, Any]] = []
    sent = feed_live(
        cohort,
        "http://testserver",
        "unused-under-test",
        speed=1_000_000.0,
        start=START,
        days=0.02,
        seed=8,
        client=client,
        sleep=lambda _: None,
        on_batch=lambda _, response: answers.append(response.json()),
    )
    assert sent > 50
    assert all(answer["rejections"] == [] for answer in answers)
    unique = {(r["device"], r["seq"]) for r in simulate_feed(cohort, START, 0.02, 8)}
    assert sum(answer["accepted"] for answer in answers) == len(unique)


def test_a_resumed_replay_carries_on_the_run_without_colliding(
    cohort: dict[str, Any], telemetry_server: tuple[str, type[_Telemetry]]
) -> None:
    # The demo stores a run's first part from a file and replays the rest live.
    url, handler = telemetry_server
    resume = START + dt.timedelta(hours=3)
    history = list(simulate_feed(cohort, START, 0.125, 4))
    feed_live(
        cohort,
        url,
        "device-token",
        speed=1_000_000.0,
        start=START,
        resume_at=resume,
        days=0.25,
        seed=4,
        sleep=lambda _: None,
    )
    live = [r for batch in handler.batches for r in batch]
    assert live
    stored = {(r["device"], r["seq"]): r for r in history}
    # Whatever the live part shares with the history is the same record (a harmless
    # retransmission of a late upload), never a different record under the same key.
    clashes = [r for r in live if (r["device"], r["seq"]) in stored]
    assert all(stored[(r["device"], r["seq"])] == r for r in clashes)
    assert len(clashes) < len(live) / 10
