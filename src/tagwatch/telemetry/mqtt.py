"""The MQTT channel: subscribe with QoS 1, store, commit, then acknowledge.

Topic layout (feed format v1): devices publish to `tagwatch/v1/devices/{serial}/{type}` a
record or a JSON array of records; `device` and `type` may be left out of the records (the
topic names them). After the records are committed the subscriber acknowledges each message
(paho-mqtt manual acks) and publishes the answer to `tagwatch/v1/answers/{serial}/{type}`.

The session is persistent (fixed client id, clean session off): messages that arrive while
the subscriber is down, or that it received but never acknowledged because it stopped before
committing, are delivered again by the broker. Storing is idempotent, so a redelivery stores
nothing twice.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.orm import Session, sessionmaker

from tagwatch.db.engine import durable_unit_of_work
from tagwatch.settings import Settings
from tagwatch.telemetry.service import IngestResult, Item, Rejection, ingest
from tagwatch.telemetry.sources import items_from_message

log = structlog.get_logger()

TOPIC_PREFIX = "tagwatch/v1/devices/"
ANSWER_PREFIX = "tagwatch/v1/answers/"
DEFAULT_TOPIC = TOPIC_PREFIX + "+/+"
DEFAULT_CLIENT_ID = "tagwatch-ingest"


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_broker_url(url: str) -> BrokerAddress:
    """`mqtt://[user:password@]host[:port]` (1883) or `mqtts://...` (TLS, 8883)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"broker URL {url!r}: use mqtt://host:port or mqtts://host:port")
    tls = parts.scheme == "mqtts"
    return BrokerAddress(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
    )


def topic_names(topic: str) -> tuple[str | None, str | None]:
    """The (serial, type) a topic names under the layout, or (None, None)."""
    if topic.startswith(TOPIC_PREFIX):
        rest = topic[len(TOPIC_PREFIX) :].split("/")
        if len(rest) == 2 and all(rest):
            return rest[0], rest[1]
    return None, None


def answer_topic(topic: str) -> str:
    if topic.startswith(TOPIC_PREFIX):
        return ANSWER_PREFIX + topic[len(TOPIC_PREFIX) :]
    return ANSWER_PREFIX + topic


def message_answers(per_message: list[list[Item]], result: IngestResult) -> list[dict[str, Any]]:
    """Each message's share of a merged batch's answer (same fields as the HTTP answer). A
    record stored new counts as accepted in the first message that carried it."""
    rejections = {id(r.errors): r for r in result.rejections}
    unclaimed = dict(result.stored)
    return [_message_answer(items, rejections, unclaimed) for items in per_message]


def _message_answer(
    items: list[Item], rejections: dict[int, Rejection], unclaimed: dict[str, tuple[bool, bool]]
) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "received": len(items),
        "accepted": 0,
        "duplicate": 0,
        "rejected": 0,
        "unallocated": 0,
        "implausible": 0,
        "rejections": [],
    }
    for item in items:
        if isinstance(item.parsed, list):
            answer["rejected"] += 1
            rejection = rejections.get(id(item.parsed))
            if rejection is not None:
                answer["rejections"].append(rejection.as_dict())
            continue
        outcome = unclaimed.pop(item.parsed.dedupe_key, None)
        if outcome is None:
            answer["duplicate"] += 1
            continue
        answer["accepted"] += 1
        answer["unallocated"] += int(outcome[0])
        answer["implausible"] += int(outcome[1])
    return answer


class MqttIngestor:
    """Subscribes, and stores messages in batches: a batch closes at `max_records` records or
    `max_wait` seconds after its first message, is committed, then acknowledged."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        *,
        url: str,
        topic: str = DEFAULT_TOPIC,
        client_id: str = DEFAULT_CLIENT_ID,
        max_records: int = 5_000,
        max_wait: float = 0.2,
        on_batch: Callable[[IngestResult], None] | None = None,
    ) -> None:
        self._factory = factory
        self._settings = settings
        self._address = parse_broker_url(url)
        self._topic = topic
        self._max_records = max_records
        self._max_wait = max_wait
        self._on_batch = on_batch
        self._inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.subscribed = threading.Event()
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            manual_ack=True,
        )
        if self._address.username:
            self._client.username_pw_set(self._address.username, self._address.password)
        if self._address.tls:
            self._client.tls_set()
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("mqtt connect refused", reason=str(reason))
            return
        client.subscribe(self._topic, qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, _codes: Any, _p: Any) -> None:
        log.info("mqtt subscribed", topic=self._topic)
        self.subscribed.set()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self._inbox.put(message)

    def run(self, stop: threading.Event) -> None:
        """Connect and store messages until `stop` is set; unacknowledged messages (a batch
        that failed to commit) are left to the broker to deliver again."""
        self._client.connect(self._address.host, self._address.port, keepalive=30)
        self._client.loop_start()
        try:
            while not stop.is_set():
                batch = self._collect(stop)
                if batch:
                    self._store(batch)
        finally:
            self._client.disconnect()
            self._client.loop_stop()

    def _collect(self, stop: threading.Event) -> list[mqtt.MQTTMessage]:
        try:
            first = self._inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        records = 1
        deadline = time.monotonic() + self._max_wait
        while records < self._max_records and not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                message = self._inbox.get(timeout=remaining)
            except queue.Empty:
                break
            batch.append(message)
            records += max(1, message.payload.count(b"{"))
        return batch

    def _store(self, batch: list[mqtt.MQTTMessage]) -> None:
        per_message: list[tuple[mqtt.MQTTMessage, list[Item]]] = []
        for message in batch:
            serial, record_type = topic_names(message.topic)
            items = items_from_message(
                bytes(message.payload), device=serial, record_type=record_type
            )
            per_message.append((message, items))
        everything = [item for _message, items in per_message for item in items]
        # Durable, not only committed: the broker forgets a message once it is acknowledged.
        with durable_unit_of_work(self._factory) as session:
            result = ingest(
                session,
                everything,
                channel="mqtt",
                origin=self._topic,
                settings=self._settings,
                received_at=dt.datetime.now(dt.UTC),
                detail=True,
            )
        # Committed: now, and only now, acknowledge and answer.
        answers = message_answers([items for _message, items in per_message], result)
        for (message, _items), answer in zip(per_message, answers, strict=True):
            if message.qos > 0:
                self._client.ack(message.mid, message.qos)
            self._client.publish(answer_topic(message.topic), orjson.dumps(answer), qos=1)
        if self._on_batch is not None:
            self._on_batch(result)
