"""`sink.mqtt`: publish the event model's events and per-label counts to an MQTT broker (paho-mqtt).

Topics: `<prefix>/<source>/events` (one JSON event per message, `stages.event_model`),
`<prefix>/<source>/<label>/count` (retained: tracked objects of that label on the latest frame,
sent when it changes), `<prefix>/status` (retained: `online` while running; `offline` at the
end, and as the last will when the connection dies). A broker that is down or slow never stalls
the pipeline: messages wait in a bounded outbox (`stages.event_outbox`), paho reconnects with
growing delays, and what does not fit is dropped and counted in the summary.
"""

from __future__ import annotations

import collections
import json
import re
import threading
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from pipeline.errors import ConfigError
from pipeline.frame import Frame
from pipeline.stage import Options, Stage, StageContext, register
from stages.event_model import out_event_records
from stages.event_outbox import Outbox
from stages.secret_file import read_secret


class MqttSinkOptions(Options):
    """Options of `sink.mqtt`. The password is read from a file and never logged."""

    host: str = Field("127.0.0.1", description="broker host name or address")
    port: int = Field(1883, ge=1, le=65535, description="broker port (8883 is usual with tls)")
    prefix: str = Field("vigil", min_length=1, description="first level of every topic")
    qos: int = Field(1, ge=0, le=2, description="MQTT quality of service of events and counts (0, 1, 2)")
    tls: bool = Field(False, description="connect with TLS (system CAs unless ca_file)")
    ca_file: str | None = Field(None, description="CA certificate file (PEM) for tls")
    username: str | None = Field(None, description="user name, when the broker asks for one")
    password_file: str | None = Field(None, description="file holding the password (first line)")
    client_id: str | None = Field(None, description="MQTT client id (default: vigil-<stage id>)")
    types: list[str] | None = Field(None, description="publish only events of these types (default: all)")
    counts: bool = Field(True, description="publish retained per-label counts")
    queue_size: int = Field(10000, ge=1, description="messages the outbox holds before it drops")
    max_inflight: int = Field(1000, ge=1, description="messages handed to the client but not yet confirmed")
    keepalive_s: int = Field(30, ge=5, description="MQTT keepalive in seconds")
    reconnect_max_s: float = Field(30.0, ge=1, description="longest wait between reconnection attempts")
    confirm_timeout_s: float = Field(
        10.0, gt=0, description="a message not confirmed after this long connected counts as failed"
    )
    close_timeout_s: float = Field(5.0, ge=0, description="at the end, wait this long to send what is queued")


def topic_segment(text: str) -> str:
    """A string usable as one topic level: `/`, `+`, `#` and control characters become `_`."""
    return re.sub(r"[/+#\x00-\x1f]", "_", text) or "_"


def label_counts(labels: list[str], tracked: list[bool]) -> dict[str, int]:
    """Tracked detections per label."""
    out: dict[str, int] = {}
    for label, keep in zip(labels, tracked, strict=True):
        if keep:
            out[label] = out.get(label, 0) + 1
    return out


@dataclass(frozen=True)
class _Message:
    topic: str
    payload: bytes
    retain: bool = False


@register("sink.mqtt")
class MqttSink(Stage[MqttSinkOptions]):
    """Publish events and counts to MQTT (see the module doc). Frames pass through unchanged.

    Summary (and `vigil_event_messages` in served metrics): delivery = queued, sent, dropped
    (outbox full or left at the end), failed (not confirmed in time), connects.
    """

    stateful = True

    def __init__(self, options: MqttSinkOptions, context: StageContext) -> None:
        super().__init__(options, context)
        self._client: Any = None
        self._outbox: Outbox[_Message] | None = None
        self._connected = threading.Event()
        self._inflight: collections.deque[Any] = collections.deque()
        self._counts: dict[str, dict[str, int]] = {}
        self.connects = 0
        self.lost = 0  # published but never confirmed (counted as failed)
        self._closing = False

    @property
    def status_topic(self) -> str:
        return f"{self.options.prefix}/status"

    def setup(self) -> None:
        if self._client is not None:
            return
        try:
            from paho.mqtt import client as mqtt
        except ImportError:
            raise ConfigError("sink.mqtt needs paho-mqtt: pip install 'vigil-analytics[events]'") from None
        o = self.options
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=o.client_id or f"vigil-{self.id}")
        client.will_set(self.status_topic, "offline", qos=1, retain=True)
        if o.username is not None:
            password = read_secret(o.password_file, "sink.mqtt password_file") if o.password_file else None
            client.username_pw_set(o.username, password)
        if o.tls:
            client.tls_set(ca_certs=o.ca_file)
        client.reconnect_delay_set(min_delay=1, max_delay=int(o.reconnect_max_s))
        client.max_inflight_messages_set(o.max_inflight)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.connect_async(o.host, o.port, o.keepalive_s)
        client.loop_start()  # paho's thread connects, reconnects and does the socket I/O
        self._client = client
        self._outbox = Outbox(f"{self.id} (mqtt {o.host}:{o.port})", self._deliver, o.queue_size)
        self.log.info("publishing to mqtt://%s:%d under %s/", o.host, o.port, o.prefix)

    def wait_connected(self, timeout_s: float) -> bool:
        """Whether the broker accepted the connection within `timeout_s` (setup never waits)."""
        return self._connected.wait(timeout_s)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if getattr(reason_code, "is_failure", False):
            self.log.warning("mqtt broker refused the connection: %s", reason_code)
            return
        self.connects += 1
        client.publish(self.status_topic, "online", qos=1, retain=True)
        self._connected.set()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if self._connected.is_set() and not self._closing:
            self.log.warning("mqtt connection lost (%s); reconnecting", reason_code)
        self._connected.clear()

    def _deliver(self, message: _Message, stopping: threading.Event) -> bool:
        """In the outbox thread: wait for a connection, publish, keep at most max_inflight pending."""
        while not stopping.is_set():
            if not self._connected.wait(0.1):
                continue
            info = self._client.publish(
                message.topic, message.payload, qos=self.options.qos, retain=message.retain
            )
            if info.rc != 0:  # lost the connection between the check and the publish: wait for it
                continue
            self._inflight.append(info)
            return self._bound_inflight(stopping)
        return False

    def _bound_inflight(self, stopping: threading.Event) -> bool:
        """Wait while max_inflight messages are unconfirmed; one not confirmed within
        `confirm_timeout_s` of connected time (lost with a dropped connection) counts as failed."""
        while self._inflight and self._inflight[0].is_published():
            self._inflight.popleft()
        waited = 0.0
        while len(self._inflight) >= self.options.max_inflight and not stopping.is_set():
            head = self._inflight[0]
            if head.is_published():
                self._inflight.popleft()
                waited = 0.0
            elif self._connected.wait(0.1):
                head.wait_for_publish(0.1)
                waited += 0.1
                if waited >= self.options.confirm_timeout_s:
                    self._inflight.popleft()
                    self.lost += 1
                    waited = 0.0
        return True

    def process(self, frame: Frame) -> Frame:
        if self._outbox is None:
            self.setup()
        assert self._outbox is not None
        source = topic_segment(frame.source)
        base = f"{self.options.prefix}/{source}"
        for record in out_event_records(frame, self.options.types):
            self._outbox.put(_Message(f"{base}/events", json.dumps(record).encode()))
        if self.options.counts:
            self._publish_counts(frame, base)
        self.context.report["delivery"] = self._report()
        return frame

    def _publish_counts(self, frame: Frame, base: str) -> None:
        assert self._outbox is not None
        dets = frame.detections
        now = label_counts([str(x) for x in dets.label], (dets.track_id >= 0).tolist())
        before = self._counts.setdefault(frame.source, {})
        for label in sorted(set(now) | set(before)):
            n = now.get(label, 0)
            if before.get(label) != n:
                message = _Message(f"{base}/{topic_segment(label)}/count", str(n).encode(), retain=True)
                if self._outbox.put(message):
                    before[label] = n

    def _report(self) -> dict[str, Any]:
        stats = self._outbox.stats.as_dict() if self._outbox else {}
        if stats:
            stats["failed"] += self.lost
            stats["sent"] -= self.lost
        pending = self._outbox.pending if self._outbox else 0
        return {**stats, "pending": pending, "connects": self.connects, "connected": self._connected.is_set()}

    def close(self) -> None:
        self._closing = True
        if self._outbox is not None:
            self._outbox.close(self.options.close_timeout_s)
        if self._client is not None:
            if self._connected.is_set():
                for info in list(self._inflight):
                    info.wait_for_publish(max(0.1, self.options.close_timeout_s / 10))
                self._client.publish(self.status_topic, "offline", qos=1, retain=True).wait_for_publish(2.0)
            self._client.disconnect()
            self._client.loop_stop()
        if self._outbox is not None:
            self.lost += sum(1 for info in self._inflight if not info.is_published())
            self.context.report["delivery"] = self._report()
        self._client = None
        self._outbox = None
