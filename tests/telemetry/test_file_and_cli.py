"""The file channel and the quarantine commands, run as the `tagwatch` command runs them.

The command opens its own store from TAGWATCH_DATABASE_URL and commits for real, so these
tests give it a fresh SQLite file of their own.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select
from telemetry_records import fix, status
from typer.testing import CliRunner

from tagwatch.cli import app
from tagwatch.db.engine import make_engine, make_sessionmaker
from tagwatch.db.metadata import load_metadata
from tagwatch.telemetry.models import DeviceEvent, GpsFix, QuarantinedRecord
from tagwatch.telemetry.sources import file_chunks


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    load_metadata().create_all(engine)
    engine.dispose()
    monkeypatch.setenv("TAGWATCH_DATABASE_URL", url)
    monkeypatch.setenv("TAGWATCH_LOG_JSON", "false")
    return url


def run(*args: str) -> dict:  # type: ignore[type-arg]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def count(url: str, model: type) -> int:
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        value = session.scalar(select(func.count()).select_from(model))
    engine.dispose()
    return int(value or 0)


def ndjson(records: list[object]) -> bytes:
    return b"\n".join(orjson.dumps(r) for r in records) + b"\n"


def test_ndjson_and_gzip_files_are_stored_once(store: str, tmp_path: Path) -> None:
    records = [fix("GPS-F1", m, seq=m) for m in range(30)] + [status("GPS-F1", 3)]
    records.insert(5, {"device": "GPS-F1", "type": "gps", "time": "not a time"})
    plain = tmp_path / "feed.ndjson"
    plain.write_bytes(ndjson(records))
    packed = tmp_path / "feed.ndjson.gz"
    packed.write_bytes(gzip.compress(ndjson(records)))

    answer = run("ingest", str(plain), "--chunk", "7")
    assert (answer["received"], answer["accepted"], answer["rejected"]) == (32, 31, 1)
    assert answer["rejections"][0]["position"] == 6
    again = run("ingest", str(packed))
    assert (again["accepted"], again["duplicate"], again["rejected"]) == (0, 31, 1)
    assert count(store, GpsFix) == 30 and count(store, DeviceEvent) == 1
    assert count(store, QuarantinedRecord) == 2


def test_the_gps_csv_form(store: str, tmp_path: Path) -> None:
    path = tmp_path / "fixes.csv.gz"
    lines = [
        "device,time,lat,lon,accuracy_m,seq",
        "GPS-C1,2026-11-23T09:00:00Z,51.5,-0.12,4.0,1",
        "GPS-C1,2026-11-23T09:01:00Z,51.5001,-0.12,4.0,2",
        "GPS-C1,2026-11-23T09:02:00Z,fifty,-0.12,4.0,3",
        "",
        "GPS-C1,2026-11-23T09:03:00Z,51.5002,-0.12,4.0,",
    ]
    path.write_bytes(gzip.compress("\n".join(lines).encode()))
    answer = run("ingest", str(path))
    assert (answer["accepted"], answer["rejected"]) == (3, 1)
    assert answer["rejections"][0]["position"] == 4
    assert answer["rejections"][0]["errors"] == [{"field": "lat", "reason": "must be a number"}]

    # A quarantined CSV row is read again with its header when replayed.
    listed = run("quarantine", "list")
    assert listed[0]["raw_text"] == lines[3]
    replay = run("quarantine", "replay", "--id", str(listed[0]["id"]))
    assert replay["released"] == [] and replay["still_rejected"][0]["errors"][0]["field"] == "lat"


def test_replay_releases_records_fixed_upstream(store: str, tmp_path: Path) -> None:
    path = tmp_path / "feed.ndjson"
    path.write_bytes(ndjson([{**status("GPS-F2", 1), "seq": -1}, status("GPS-F2", 2)]))
    answer = run("ingest", str(path))
    assert answer["rejected"] == 1
    # Still invalid: the replay keeps it, and says why.
    kept = run("quarantine", "replay")
    assert kept["released"] == [] and kept["still_rejected"][0]["errors"][0]["field"] == "seq"
    assert run("quarantine", "list", "--status", "released") == []


def test_file_chunks_stream_with_progress(tmp_path: Path) -> None:
    path = tmp_path / "big.ndjson"
    path.write_bytes(ndjson([fix("GPS-F3", m) for m in range(25)]))
    chunks = list(file_chunks(path, 10))
    assert [len(items) for items, _ in chunks] == [10, 10, 5]
    assert chunks[-1][1] == path.stat().st_size
    assert [item.position for item in chunks[1][0]][:2] == [11, 12]
