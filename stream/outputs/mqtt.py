"""MQTT output with Home Assistant discovery (paho-mqtt).

`MqttOutput.from_config(config.mqtt, set_threshold)` connects in the background and, as an output of the
pipeline (stream.output), takes its messages in `handle(message)`; the pipeline closes it. Topics (`P` =
`topic_prefix`; a stream name or target label becomes a topic segment by lower-casing it and replacing
anything outside `[a-z0-9_-]` with `_`, the original name stays in the payload):
- `P/events`: the confirmed events (stream.events.ConfirmedView) as JSON `event` messages of
  docs/schema.md, envelope included;
- `P/<stream>/<target>`: `ON` / `OFF`, retained (OFF for every target when a stream starts);
- `P/<stream>/<target>/score`: the peak of the target's confirmed event on each start/update (dBFS
  for `Loud`, the loudness trigger's target);
- `P/<stream>/level`: input level in dBFS, once a second (from `status`);
- `P/<stream>/<target>/threshold`: the on-threshold in force, retained; a number written to
  `P/<stream>/<target>/threshold/set` changes it live (the `set_threshold` callback it was built with,
  e.g. stream.pipeline.ThresholdChanges.set) and is echoed on this topic once the stream applied it;
- `P/availability`: `online` / `offline`, retained; the broker's last will says `offline`.
With `discovery_prefix`, each stream's first `status` publishes retained Home Assistant discovery
configs: a `binary_sensor` per target (`Loud` included when the loudness trigger is on) and a `number`
for each model target's threshold, and a `sensor` for the level,
all under one device per stream with the availability topic.

Threads and faults. Nothing here waits for the broker. Messages wait in one bounded queue (`queue`
messages; when it is full the oldest is dropped and counted in `dropped`). A sender thread hands
them to paho while connected, at most IN_FLIGHT unacknowledged at a time, so paho's own queue
stays small and a stalled broker fills only ours. paho's network thread connects, and reconnects
with a backoff capped at `reconnect_max` seconds; on every connection the retained messages
(discovery, states, thresholds) go out again first, since a restarted broker may have lost them,
then the queue. The pipeline's `close()` drains the queue for at most DRAIN_SECONDS.
"""

import json
import logging
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as paho

from htsat_live.stream.config import MqttConfig
from htsat_live.stream.events import ConfirmedView, Event
from htsat_live.stream.loudness import LABEL as LOUDNESS_LABEL
from htsat_live.stream.messages import EventMessage, Message, event_message, message_json
from htsat_live.stream.output import Output

MIN_RECONNECT_DELAY = 1  # seconds before the first reconnect attempt; doubles up to reconnect_max
KEEPALIVE = 30  # seconds between pings on an idle connection
IN_FLIGHT = 100  # messages handed to paho and not yet acknowledged, at most
DRAIN_SECONDS = 3.0  # longest close() waits for the queue to go out

log = logging.getLogger(__name__)


def segment(name: str) -> str:
    """A stream name or target label as one topic segment: "Dog bark!" -> "dog_bark_"."""
    return re.sub(r"[^a-z0-9_-]", "_", name.lower())


def read_password(path: str) -> str:
    """The first line of a password file; ValueError naming mqtt.password_file when it cannot be read."""
    try:
        return Path(path).expanduser().read_text(encoding="utf-8").splitlines()[0]
    except (OSError, UnicodeDecodeError, IndexError) as error:
        reason = "it is empty" if isinstance(error, IndexError) else getattr(error, "strerror", None) or error
        raise ValueError(f"mqtt.password_file: cannot read {path}: {reason}") from None


SetThreshold = Callable[[str, str, float], None]  # (stream, target, on); ValueError for a change refused


class MqttOutput(Output):
    """Publishes the pipeline's messages to an MQTT broker (see the module docstring).

    Counters: `sent` (handed to the connection), `dropped` (oldest messages pushed out of the full
    queue), `reconnects` (connections made after the first); `counters()` adds the queue depth, the
    link state and the last error. `set_threshold(stream, target, on)` is called from paho's thread when
    Home Assistant asks for a new threshold (without it, such requests are ignored).
    """

    name = "mqtt"

    def __init__(self, config: MqttConfig, set_threshold: SetThreshold | None = None):
        address = urlsplit(config.url)
        self.host = address.hostname
        self.port = address.port or (8883 if address.scheme == "mqtts" else 1883)
        self.prefix = config.topic_prefix.rstrip("/")
        self.discovery_prefix = config.discovery_prefix.rstrip("/")
        self.qos = config.qos
        self.client_id = config.client_id or f"htsat-live-{socket.gethostname()}"
        self.node = segment(self.client_id)  # Home Assistant's node id: part of unique ids and discovery topics
        self.set_threshold = set_threshold
        self.sent = self.dropped = self.reconnects = 0
        self.connected = False
        self.last_error: str | None = None
        self._view = ConfirmedView()
        # Guards the queue, the retained messages and the counters. Never held while calling paho: paho
        # calls back (on_publish) holding its own locks, which its publish() takes too.
        self._lock = threading.Condition()
        self._queue: deque[tuple[str, str, bool]] = deque()  # (topic, payload, retain) waiting for the broker
        self._limit = config.queue
        self._retained: dict[str, str] = {}  # topic -> newest retained payload, sent again on each connection
        self._resend = False  # a new connection: the retained messages go out first
        self._handed = self._acknowledged = 0  # messages given to paho, and those it reported sent
        self._closing = False
        self._streams: dict[str, dict[str, str]] = {}  # stream segment -> (target segment -> target name)
        self._names: dict[str, str] = {}  # stream segment -> stream name
        self._thresholds: dict[str, dict[str, list]] = {}  # stream -> thresholds last echoed
        self._seq: dict[str, int] = {}  # stream -> next seq of its P/events messages
        self._connections = 0
        self._client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=self.client_id, reconnect_on_failure=True
        )
        if config.username:
            self._client.username_pw_set(
                config.username, read_password(config.password_file) if config.password_file else None
            )
        if address.scheme == "mqtts":
            try:
                self._client.tls_set(ca_certs=config.ca_file or None)
            except (OSError, ValueError) as error:
                raise ValueError(f"mqtt.ca_file: cannot use {config.ca_file}: {error}") from None
        self._client.will_set(self._topic("availability"), "offline", qos=1, retain=True)
        self._client.reconnect_delay_set(MIN_RECONNECT_DELAY, round(config.reconnect_max))
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._client.connect_async(self.host, self.port, keepalive=KEEPALIVE)
        self._client.loop_start()  # paho's network thread: connects, reconnects, sends
        self._sender = threading.Thread(target=self._send_loop, name="mqtt sender", daemon=True)
        self._sender.start()

    @classmethod
    def from_config(cls, config: MqttConfig, set_threshold: SetThreshold | None = None) -> "MqttOutput | None":
        """The output `[mqtt]` asks for, or None when its url is empty."""
        return cls(config, set_threshold) if config.url else None

    def counters(self) -> dict:
        with self._lock:
            return {
                "connected": self.connected,
                "queue": len(self._queue),
                "sent": self.sent,
                "dropped": self.dropped,
                "reconnects": self.reconnects,
                "error": self.last_error,
            }

    # --- pipeline side ----------------------------------------------------------------------------

    def handle(self, message: Message | EventMessage) -> None:
        if message.topic == "status":
            self._status(message.stream, message.body)
        elif message.topic == "event":
            for shown in self._view.take(message.stream, message.event):
                self._event(message.stream, shown)

    def close(self) -> None:
        """Send what is queued (for at most DRAIN_SECONDS), say `offline`, and stop both threads."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        self._sender.join()
        info = self._client.publish(self._topic("availability"), "offline", qos=1, retain=True)
        if self.connected:
            try:
                info.wait_for_publish(timeout=DRAIN_SECONDS)
            except (RuntimeError, ValueError):
                pass  # not sent: the broker's last will says offline instead
        self._client.disconnect()
        self._client.loop_stop()

    def _status(self, stream: str, body: dict) -> None:
        name = segment(stream)
        if name not in self._streams:
            targets = list(body["thresholds"]) + ([LOUDNESS_LABEL] if body["loudness"] else [])
            self._streams[name] = {segment(target): target for target in targets}
            self._names[name] = stream
            self._announce(stream, body["thresholds"])
        self._publish(self._topic(name, "level"), str(body["level_dbfs"]))
        thresholds = body["thresholds"]
        echoed = self._thresholds.get(stream, {})
        for target, (on, _) in thresholds.items():
            if echoed.get(target, [None])[0] != on:
                self._publish(self._topic(name, segment(target), "threshold"), str(on), retain=True)
        self._thresholds[stream] = thresholds

    def _event(self, stream: str, event: Event) -> None:
        seq = self._seq.get(stream, 0)
        self._seq[stream] = seq + 1
        self._publish(self._topic("events"), message_json("event", stream, seq, event_message(event)))
        state = self._topic(segment(stream), segment(event.label))
        if event.state == "end":
            self._publish(state, "OFF", retain=True)
        else:
            if event.state == "start":
                self._publish(state, "ON", retain=True)
            self._publish(state + "/score", str(event.peak))

    def _announce(self, stream: str, thresholds: dict) -> None:
        """Every target OFF, and the Home Assistant discovery configs of the stream's entities."""
        name = segment(stream)
        for target_segment in self._streams[name]:
            self._publish(self._topic(name, target_segment), "OFF", retain=True)
        if not self.discovery_prefix:
            return
        device = {
            "identifiers": [f"{self.node}_{name}"],
            "name": f"htsat-live {stream}",
            "manufacturer": "htsat-live",
            "model": "HTS-AT sound event detector",
        }
        common = {"availability_topic": self._topic("availability"), "device": device}
        for target_segment, target in self._streams[name].items():
            state = self._topic(name, target_segment)
            entity = f"{self.node}_{name}_{target_segment}"
            self._discover(
                "binary_sensor",
                entity,
                {
                    **common,
                    "name": target,
                    "unique_id": entity,
                    "state_topic": state,
                    "payload_on": "ON",
                    "payload_off": "OFF",
                    "device_class": "sound",
                },
            )
            if target not in thresholds:  # Loud: its threshold is a level, set in the config
                continue
            self._discover(
                "number",
                f"{entity}_threshold",
                {
                    **common,
                    "name": f"{target} threshold",
                    "unique_id": f"{entity}_threshold",
                    "state_topic": f"{state}/threshold",
                    "command_topic": f"{state}/threshold/set",
                    "min": 0.0,
                    "max": 1.0,
                    "step": 0.01,
                    "mode": "box",
                    "entity_category": "config",
                },
            )
        self._discover(
            "sensor",
            f"{self.node}_{name}_level",
            {
                **common,
                "name": "Level",
                "unique_id": f"{self.node}_{name}_level",
                "state_topic": self._topic(name, "level"),
                "unit_of_measurement": "dBFS",
                "state_class": "measurement",
            },
        )

    def _discover(self, component: str, object_id: str, config: dict) -> None:
        self._publish(
            f"{self.discovery_prefix}/{component}/{self.node}/{object_id}/config", json.dumps(config), retain=True
        )

    def _topic(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    def _publish(self, topic: str, payload: str, retain: bool = False) -> None:
        with self._lock:
            if retain:
                self._retained[topic] = payload
            if len(self._queue) >= self._limit:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append((topic, payload, retain))
            self._lock.notify_all()

    # --- the sender thread ------------------------------------------------------------------------

    def _send_loop(self) -> None:
        drain_until = None
        while True:
            with self._lock:
                while not self._ready():
                    if self._closing:
                        drain_until = drain_until or time.monotonic() + DRAIN_SECONDS
                        if not self._queue or not self.connected or time.monotonic() > drain_until:
                            return
                    self._lock.wait(0.1)
                if self._resend:
                    batch = [(topic, payload, True) for topic, payload in self._retained.items()]
                    self._resend = False
                else:
                    batch = [self._queue.popleft()]
                self._handed += len(batch)
                self.sent += len(batch)
            for topic, payload, retain in batch:
                self._client.publish(topic, payload, qos=self.qos, retain=retain)

    def _ready(self) -> bool:
        """Something to send, a link to send it on, and room in flight (the caller holds the lock)."""
        if not self.connected:
            return False
        return self._resend or (bool(self._queue) and self._handed - self._acknowledged < IN_FLIGHT)

    # --- paho's thread ----------------------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker {self.host}:{self.port} refused the connection: {reason_code}"
            log.warning("mqtt: %s", self.last_error)
            return
        client.subscribe(self._topic("+", "+", "threshold", "set"), qos=1)
        with self._lock:
            self.reconnects = self._connections
            self._connections += 1
            self.connected = True
            self.last_error = None
            self._resend = bool(self._retained)
            self._handed += 1  # the availability below; paho sends again what was in flight before
            self._lock.notify_all()
        client.publish(self._topic("availability"), "online", qos=1, retain=True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._lock:
            was_connected, self.connected = self.connected, False
        if was_connected and reason_code.is_failure:  # after a refusal, the refusal is the news
            self.last_error = f"lost broker {self.host}:{self.port}: {reason_code}"

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            self._acknowledged += 1
            self._lock.notify_all()

    def _on_message(self, client, userdata, message) -> None:
        """A threshold written by Home Assistant (P/<stream>/<target>/threshold/set)."""
        parts = message.topic[len(self.prefix) + 1 :].split("/")
        target = self._streams.get(parts[0], {}).get(parts[1]) if len(parts) == 4 else None
        if target is None or self.set_threshold is None:
            return
        try:
            self.set_threshold(self._names[parts[0]], target, float(message.payload))
        except ValueError as error:  # not a number, or out of 0..1: the threshold in force stays
            log.warning("mqtt: %s: %s", message.topic, error)
