"""The MQTT channel against a real Mosquitto broker (TAGWATCH_TEST_MQTT_URL, else 1883 here)."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from telemetry_records import fix, status

from tagwatch.db.engine import make_engine, make_sessionmaker
from tagwatch.db.metadata import load_metadata
from tagwatch.settings import Settings
from tagwatch.telemetry.models import DeviceEvent, GpsFix
from tagwatch.telemetry.mqtt import MqttIngestor, parse_broker_url

pytestmark = pytest.mark.mqtt
WAIT = 20.0


@pytest.fixture(scope="module")
def broker_url() -> str:
    url = os.environ.get("TAGWATCH_TEST_MQTT_URL")
    if url:
        return url
    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=1).close()
    except OSError:
        pytest.skip("TAGWATCH_TEST_MQTT_URL is not set and no MQTT broker listens on 1883")
    return "mqtt://127.0.0.1:1883"


class Device:
    """A publishing client that also collects the answers addressed to its topics."""

    def __init__(self, url: str) -> None:
        address = parse_broker_url(url)
        self.answers: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda _c, _u, m: self.answers.put(
            (m.topic, orjson.loads(m.payload))
        )
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        self.client.subscribe("tagwatch/v1/answers/#", qos=1)
        assert subscribed.wait(WAIT)

    def publish(self, topic: str, payload: object) -> None:
        self.client.publish(topic, orjson.dumps(payload), qos=1).wait_for_publish(WAIT)

    def answer(self) -> tuple[str, dict[str, Any]]:
        return self.answers.get(timeout=WAIT)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def device(broker_url: str) -> Iterator[Device]:
    publisher = Device(broker_url)
    yield publisher
    publisher.close()


def forget_session(url: str, client_id: str) -> None:
    """Drop the broker's persistent session for `client_id` (tests leave none behind)."""
    address = parse_broker_url(url)
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True
    )
    client.connect(address.host, address.port)
    client.disconnect()


class Running:
    """An ingestor in a thread; `error` holds what stopped it, if anything did."""

    def __init__(self, ingestor: MqttIngestor) -> None:
        self.ingestor = ingestor
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert ingestor.subscribed.wait(WAIT)

    def _run(self) -> None:
        try:
            self.ingestor.run(self.stop)
        except BaseException as exc:
            self.error = exc

    def close(self) -> None:
        self.stop.set()
        self.thread.join(WAIT)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_records_are_stored_acknowledged_and_answered(
    broker_url: str,
    device: Device,
    session_factory: sessionmaker[Session],
    settings: Settings,
    db: Session,
) -> None:
    serial = unique("GPS-MQ")
    client_id = unique("tagwatch-test")
    running = Running(
        MqttIngestor(
            session_factory,
            settings,
            url=broker_url,
            topic=f"tagwatch/v1/devices/{serial}/+",
            client_id=client_id,
        )
    )
    try:
        records = [fix(serial, 0, seq=1), fix(serial, 1, seq=2), {"time": "later"}]
        for record in records:
            record.pop("device", None)
            record.pop("type", None)
        device.publish(f"tagwatch/v1/devices/{serial}/gps", records)
        topic, answer = device.answer()
        assert topic == f"tagwatch/v1/answers/{serial}/gps"
        assert (answer["accepted"], answer["rejected"], answer["unallocated"]) == (2, 1, 2)
        assert answer["rejections"][0]["position"] == 2

        device.publish(f"tagwatch/v1/devices/{serial}/status", status(serial, 3))
        _topic, second = device.answer()
        assert second["accepted"] == 1
        # The same record again, and one that names another device than its topic.
        device.publish(f"tagwatch/v1/devices/{serial}/gps", fix(serial, 0, seq=1))
        assert device.answer()[1]["duplicate"] == 1
        device.publish(f"tagwatch/v1/devices/{serial}/gps", fix("GPS-OTHER", 5))
        (mismatch,) = device.answer()[1]["rejections"]
        assert mismatch["errors"][0]["field"] == "device"
    finally:
        running.close()
        forget_session(broker_url, client_id)
    assert running.error is None
    assert db.scalar(select(func.count()).where(GpsFix.device_serial == serial)) == 2
    assert db.scalar(select(func.count()).where(DeviceEvent.device_serial == serial)) == 1


def test_a_batch_that_fails_to_commit_is_delivered_again(
    broker_url: str,
    device: Device,
    session_factory: sessionmaker[Session],
    settings: Settings,
    db: Session,
    tmp_path: Path,
) -> None:
    serial = unique("GPS-MQR")
    client_id = unique("tagwatch-test")
    topic = f"tagwatch/v1/devices/{serial}/+"
    # A store with no tables: storing fails, so nothing is committed or acknowledged.
    broken = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    first = Running(
        MqttIngestor(
            make_sessionmaker(broken), settings, url=broker_url, topic=topic, client_id=client_id
        )
    )
    try:
        device.publish(f"tagwatch/v1/devices/{serial}/gps", [fix(serial, 0), fix(serial, 1)])
        first.thread.join(WAIT)
        assert first.error is not None  # it stopped on the failed commit
        assert device.answers.empty()

        second = Running(
            MqttIngestor(
                session_factory, settings, url=broker_url, topic=topic, client_id=client_id
            )
        )
        try:
            _topic, answer = device.answer()  # the broker delivered the message again
            assert answer["accepted"] == 2
        finally:
            second.close()
    finally:
        first.close()
        broken.dispose()
        forget_session(broker_url, client_id)
    assert second.error is None
    assert db.scalar(select(func.count()).where(GpsFix.device_serial == serial)) == 2


def test_the_ingest_mqtt_command(broker_url: str, device: Device, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mqtt.db'}"
    engine = make_engine(url)
    load_metadata().create_all(engine)
    serial = unique("GPS-MQC")
    client_id = unique("tagwatch-test")
    env = {**os.environ, "TAGWATCH_DATABASE_URL": url, "TAGWATCH_LOG_JSON": "false"}
    command = [
        sys.executable,
        "-c",
        "from tagwatch.cli import main; main()",
        "ingest-mqtt",
        "--url",
        broker_url,
        "--topic",
        f"tagwatch/v1/devices/{serial}/+",
        "--client-id",
        client_id,
    ]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + WAIT
        while "Listening" not in process.stderr.readline():
            assert time.monotonic() < deadline and process.poll() is None
        time.sleep(1.0)  # the subscription follows the connection
        device.publish(f"tagwatch/v1/devices/{serial}/gps", fix(serial, 0))
        _topic, answer = device.answer()
        assert answer["accepted"] == 1
    finally:
        process.terminate()
        process.wait(WAIT)
        forget_session(broker_url, client_id)
    with make_sessionmaker(engine)() as session:
        assert session.scalar(select(func.count()).where(GpsFix.device_serial == serial)) == 1
    engine.dispose()
