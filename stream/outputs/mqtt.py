"""MQTT output with Home Assistant discovery (paho-mqtt).

`MqttOutput.from_config(config.mqtt, set_threshold)` checks the `[mqtt]` settings (ValueError naming the key),
says at once when the broker cannot be resolved or reached (a warning: detection goes on), connects in the
background once the pipeline's streams are attached and, as an output of the pipeline (stream.output), takes
its messages in `handle(message)`; the pipeline closes it. Every topic of a detector lies under `P/N`
(`P` = `topic_prefix`; `N` = the node id, `client_id` as a topic segment, by default
`htsat-live-<host>-<stream names>`), so detectors on other hosts with the same stream names share none;
a stream name or target label becomes a topic segment by lower-casing it and replacing anything outside
`[a-z0-9_-]` with `_`, the original name stays in the payload:
- `P/N/events`: the confirmed events (stream.events.ConfirmedView) as JSON `event` messages of
  docs/schema.md, envelope included;
- `P/N/<stream>/<target>`: `ON` / `OFF`, retained (OFF for every target when a stream starts);
- `P/N/<stream>/<target>/score`: the peak of the target's confirmed event on each start/update (dBFS
  for `Loud`, the loudness trigger's target);
- `P/N/<stream>/event`: `{"event_type": <target>, ...the event}` on each confirmed start, for Home
  Assistant's `event` entity (not retained: a subscriber hears of it once, when it happens);
- `P/N/<stream>/level`: input level in dBFS, once a second (from `status`) once audio has come;
- `P/N/<stream>/<target>/threshold`: the on-threshold in force (3 decimals), retained; a number written to
  `P/N/<stream>/<target>/threshold/set` changes it live (the `set_threshold` callback it was built with,
  e.g. stream.pipeline.ThresholdChanges.set), is kept in the state file (thresholds_path) so that it holds
  after a restart, and is echoed on this topic once the stream applied it;
- `P/N/availability`: `online` / `offline`, retained, one topic per detector; the broker's last will says
  `offline`.
With `discovery_prefix`, each stream's first `status` publishes retained Home Assistant discovery
configs: a `binary_sensor` per target (`Loud` included when the loudness trigger is on), a `number`
for each model target's threshold, a `sensor` for the level and an `event` entity for the stream's
confirmed starts, all under one device per stream with the detector's availability topic, QoS 1.

Order on every connection. A subscriber (Home Assistant) that sees `online` shows the states it holds, so
`online` goes out last: first the retained discovery configs, states and thresholds (a restarted broker may
have lost them, and a state may have changed while the link was down), then the newest level, then
`online` once every attached stream has announced its states (or ANNOUNCE_WAIT seconds after connecting, so
that a stream that never reports cannot keep the others unavailable), then the queued event messages in order.

Threads and faults. Nothing here waits for the broker. Event messages wait in one bounded queue (`queue`
messages; when it is full the oldest is dropped and counted in `dropped`); while the link is down a retained
topic (a state) or a level keeps only its newest value, sent when the link returns. A sender thread hands
messages to paho while connected, at most IN_FLIGHT unacknowledged at a time, so paho's own queue stays small
and a stalled broker fills only ours. paho's network thread connects, and reconnects with a backoff capped
at `reconnect_max` seconds. The pipeline's `close()` drains the queue for at most DRAIN_SECONDS; what is
left is counted (`unsent`) and said in one line.
"""

import json
import logging
import os
import re
import socket
import sys
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
from htsat_live.stream.ring import RingBuffer

MIN_RECONNECT_DELAY = 1  # seconds before the first reconnect attempt; doubles up to reconnect_max
KEEPALIVE = 30  # seconds between pings on an idle connection
IN_FLIGHT = 100  # messages handed to paho and not yet acknowledged, at most
DRAIN_SECONDS = 3.0  # longest close() waits for the queue to go out
PROBE_SECONDS = 2.0  # longest the check at start waits for the broker's port
ANNOUNCE_WAIT = 10.0  # longest `online` waits after connecting for every stream's first states
THRESHOLD_DECIMALS = 3  # thresholds as people set them (Home Assistant's step is 0.01), not float32 digits

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


def broker_address(config: MqttConfig) -> tuple[str, int]:
    """(host, port) of `mqtt.url`; ValueError naming the setting for a port outside 1..65535."""
    address = urlsplit(config.url)
    try:
        port = address.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"mqtt.url: the port must be 1..65535, got {config.url!r}")
    if not address.hostname:
        raise ValueError(f"mqtt.url: must be mqtt://HOST[:PORT] or mqtts://HOST[:PORT], got {config.url!r}")
    return address.hostname, port or (8883 if address.scheme == "mqtts" else 1883)


def check_settings(config: MqttConfig) -> None:
    """ValueError naming the `[mqtt]` setting that cannot work (beyond the types and ranges stream.config checks):
    `detect` calls it before the model loads, the output again when it is built."""
    broker_address(config)
    if config.password_file and not config.username:
        raise ValueError("mqtt.password_file: a password needs mqtt.username, which is empty")
    if config.password_file:
        read_password(config.password_file)
    for key in ("topic_prefix", "discovery_prefix", "client_id"):
        value = getattr(config, key)
        if any(character in value for character in "+#\0"):
            raise ValueError(f"mqtt.{key}: must not contain +, # or NUL, got {value!r}")
    if not config.topic_prefix.strip("/"):
        raise ValueError("mqtt.topic_prefix: must not be empty")


def probe(host: str, port: int, timeout: float = PROBE_SECONDS) -> str | None:
    """Why the broker at host:port cannot be reached (its name unknown, nothing listening), or None."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        return f"cannot resolve the broker's host {host!r}: {getattr(error, 'strerror', None) or error}"
    reason = "no address"
    for family, kind, protocol, _, address in addresses:
        try:
            with socket.socket(family, kind, protocol) as connection:
                connection.settimeout(timeout)
                connection.connect(address)
                return None
        except OSError as error:
            reason = error.strerror or str(error) or type(error).__name__
    return f"cannot reach the broker at {host}:{port}: {reason}"


def state_home() -> Path:
    """$XDG_STATE_HOME/htsat-live (~/.local/state/htsat-live when unset)."""
    home = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(home) / "htsat-live"


def thresholds_path() -> Path:
    """The file that keeps thresholds set over MQTT across restarts."""
    return state_home() / "mqtt-thresholds.json"


class KeptThresholds:
    """Thresholds set over MQTT, kept in a small JSON file: {node: {stream: {target: [on, configured]}}}.

    `configured` is the threshold the config gave when the change was made: a kept value applies again only
    while the config still says the same (a threshold edited in the config since then wins). A file that cannot
    be read or written costs the keeping, with one warning, never the stream.
    """

    def __init__(self, path: Path, node: str):
        self.path, self.node = path, node
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            self._all = data if isinstance(data, dict) else {}
        except FileNotFoundError:
            self._all = {}
        except (OSError, ValueError) as error:
            log.warning("mqtt: cannot read the kept thresholds %s (%s): starting without them", path, error)
            self._all = {}

    def get(self, stream: str) -> dict[str, list]:
        kept = self._all.get(self.node, {}).get(stream, {})
        return kept if isinstance(kept, dict) else {}

    def keep(self, stream: str, target: str, on: float, configured: float) -> None:
        self._all.setdefault(self.node, {}).setdefault(stream, {})[target] = [on, configured]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            part = self.path.with_suffix(".part")
            part.write_text(json.dumps(self._all, indent=1) + "\n", encoding="utf-8")
            part.replace(self.path)
        except OSError as error:
            log.warning("mqtt: cannot keep the threshold in %s: %s", self.path, error.strerror or error)


SetThreshold = Callable[[str, str, float], None]  # (stream, target, on); ValueError for a change refused


def rounded(threshold: float) -> float:
    return round(float(threshold), THRESHOLD_DECIMALS)


class MqttOutput(Output):
    """Publishes the pipeline's messages to an MQTT broker (see the module docstring).

    Counters (`counters()`, on `status` under `mqtt` and in the final counters of `detect`): `state`
    (connecting, connected, unreachable, refused, lost; closed once it closed with the link up), `connected`,
    `queue` (event messages waiting for the broker), `sent` (acknowledged by the broker), `dropped` (oldest
    messages pushed out of the full queue), `unsent` (left when it closed: queued, newest states and levels
    not delivered, in flight),
    `reconnects` (connections made after the first) and `error`. `set_threshold(stream, target, on)` is called
    from paho's thread when Home Assistant asks for a new threshold (without it, such requests are ignored);
    `thresholds_file` keeps such changes across restarts (default: thresholds_path()).
    """

    name = "mqtt"
    topics = ("status", "event")

    def __init__(
        self, config: MqttConfig, set_threshold: SetThreshold | None = None, thresholds_file: Path | None = None
    ):
        check_settings(config)
        self.host, self.port = broker_address(config)
        self.config = config
        self.prefix = config.topic_prefix.rstrip("/")
        self.discovery_prefix = config.discovery_prefix.rstrip("/")
        self.qos = config.qos
        self.client_id = config.client_id  # "" until the streams are attached: then htsat-live-<host>-<streams>
        self.node = segment(self.client_id)  # Home Assistant's node id: part of unique ids and discovery topics
        self.set_threshold = set_threshold
        self.thresholds_file = thresholds_file or thresholds_path()
        self.sent = self.dropped = self.reconnects = self.unsent = 0
        self.connected = False
        self.state = "connecting"
        self._password = read_password(config.password_file) if config.password_file else None
        if urlsplit(config.url).scheme == "mqtts" and config.ca_file:
            import ssl

            try:
                ssl.create_default_context(cafile=str(Path(config.ca_file).expanduser()))
            except (OSError, ssl.SSLError) as error:
                raise ValueError(f"mqtt.ca_file: cannot use {config.ca_file}: {error}") from None
        self.last_error = probe(self.host, self.port)
        self._warned = self.last_error is not None  # one line per outage, not one per attempt
        if self.last_error is not None:
            self.state = "unreachable"
            log.warning(
                "mqtt: %s (mqtt.url); detection goes on, MQTT messages wait (%d at most) until it answers",
                self.last_error,
                config.queue,
            )
        self._view = ConfirmedView()
        # Guards the queue, the retained messages and the counters. Never held while calling paho: paho
        # calls back (on_publish) holding its own locks, which its publish() takes too.
        self._lock = threading.Condition()
        self._queue: deque[tuple[str, str, str]] = deque()  # (topic, payload, kind) waiting for the broker
        self._limit = config.queue
        self._retained: dict[str, str] = {}  # topic -> newest retained payload, sent again on each connection
        self._latest: dict[str, str] = {}  # topic -> newest level or score while the link is down
        self._changed: set[str] = set()  # retained topics changed while the link was down
        self._resend = False  # a new connection: the retained messages, the newest levels, `online` go out first
        self._attached: list[str] = []  # the streams, in the order the pipeline attached them
        self._pending: set[str] = set()  # attached streams that have not announced their states yet
        self._online = False  # `online` handed over on this connection
        self._connected_at = 0.0
        self._handed = self._acknowledged = 0  # messages given to paho, and those it reported sent
        self._closing = False
        self._streams: dict[str, dict[str, str]] = {}  # stream segment -> (target segment -> target name)
        self._names: dict[str, str] = {}  # stream segment -> stream name
        self._configured: dict[str, dict[str, float]] = {}  # stream -> target -> threshold the config gave
        self._thresholds: dict[str, dict[str, float]] = {}  # stream -> thresholds last echoed
        self._seq: dict[str, int] = {}  # stream -> next seq of its P/N/events messages
        self._connections = 0
        self._client: paho.Client | None = None
        self._kept: KeptThresholds | None = None
        self._sender = threading.Thread(target=self._send_loop, name="mqtt sender", daemon=True)

    @classmethod
    def from_config(cls, config: MqttConfig, set_threshold: SetThreshold | None = None) -> "MqttOutput | None":
        """The output `[mqtt]` asks for, or None when its url is empty."""
        return cls(config, set_threshold) if config.url else None

    @property
    def availability(self) -> str:
        return self._topic("availability")

    def counters(self) -> dict:
        with self._lock:
            return {
                "state": self.state,
                "connected": self.connected,
                "queue": len(self._queue),
                "sent": self.sent,
                "dropped": self.dropped,
                "unsent": self.unsent,
                "reconnects": self.reconnects,
                "error": self.last_error,
            }

    # --- pipeline side ----------------------------------------------------------------------------

    def attach(self, stream: str, ring: RingBuffer, targets: list[str]) -> None:
        self._attached.append(stream)
        with self._lock:
            self._pending.add(stream)

    def handle(self, message: Message | EventMessage) -> None:
        if self._client is None:
            self._start()
        if message.topic == "status":
            self._status(message.stream, message.body)
        elif message.topic == "event":
            for shown in self._view.take(message.stream, message.event):
                self._event(message.stream, shown)

    def close(self) -> None:
        """Send what is queued (for at most DRAIN_SECONDS), say `offline`, stop both threads, and count and say
        what could not be sent."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        if self._client is None:  # never started: no message came
            return
        self._sender.join()
        info = self._client.publish(self.availability, "offline", qos=1, retain=True)
        if self.connected:
            try:
                info.wait_for_publish(timeout=DRAIN_SECONDS)
            except (RuntimeError, ValueError):
                pass  # not sent: the broker's last will says offline instead
        self._client.disconnect()
        self._client.loop_stop()
        try:
            offline_acknowledged = 1 if info.is_published() else 0  # `offline` is no message of the streams
        except (RuntimeError, ValueError):
            offline_acknowledged = 0
        with self._lock:
            self.connected = False
            self.state = "closed" if self.state == "connected" else self.state  # else why the link was down
            in_flight = max(0, self._handed - self._acknowledged + offline_acknowledged)
            self.unsent = len(self._queue) + len(self._latest) + len(self._changed) + in_flight
            unsent, queued = self.unsent, len(self._queue)
        if unsent:
            log.warning(
                "mqtt: %d messages not sent (%d queued events, the rest newest states, levels and messages in "
                "flight): %s",
                unsent,
                queued,
                self.last_error or f"the broker at {self.host}:{self.port} did not take them in time",
            )

    def _start(self) -> None:
        """Connect in the background, under the client id of the streams attached by now."""
        if not self.client_id:
            names = "-".join(segment(stream) for stream in self._attached)
            self.client_id = f"htsat-live-{segment(socket.gethostname())}" + (f"-{names}" if names else "")
            self.node = segment(self.client_id)
        self._kept = KeptThresholds(self.thresholds_file, self.node)
        self._client = client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=self.client_id, reconnect_on_failure=True
        )
        if self.config.username:
            client.username_pw_set(self.config.username, self._password)
        if urlsplit(self.config.url).scheme == "mqtts":
            client.tls_set(ca_certs=str(Path(self.config.ca_file).expanduser()) if self.config.ca_file else None)
        client.will_set(self.availability, "offline", qos=1, retain=True)
        client.reconnect_delay_set(MIN_RECONNECT_DELAY, round(self.config.reconnect_max))
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.connect_async(self.host, self.port, keepalive=KEEPALIVE)
        client.loop_start()  # paho's network thread: connects, reconnects, sends
        self._sender.start()

    def _status(self, stream: str, body: dict) -> None:
        name = segment(stream)
        thresholds = {target: rounded(on) for target, (on, _) in body["thresholds"].items()}
        if name not in self._streams:
            targets = list(thresholds) + ([LOUDNESS_LABEL] if body["loudness"] else [])
            self._streams[name] = {segment(target): target for target in targets}
            self._names[name] = stream
            self._configured[stream] = dict(thresholds)
            thresholds.update(self._apply_kept(stream, thresholds))
            self._announce(stream, list(thresholds))
            with self._lock:
                self._pending.discard(stream)
                if not self._pending and self.connected and not self._resend and not self._online:
                    self._enqueue(self.availability, "online", "retained")  # after the states just queued
                    self._online = True
        if body.get("stream_seconds", 0) > 0:  # before any audio, the level would be a placeholder
            self._publish(self._topic(name, "level"), str(body["level_dbfs"]), "latest")
        echoed = self._thresholds.setdefault(stream, {})
        for target, on in thresholds.items():
            if echoed.get(target) != on:
                self._publish(self._topic(name, segment(target), "threshold"), f"{on:g}", "retained")
                echoed[target] = on

    def _apply_kept(self, stream: str, thresholds: dict[str, float]) -> dict[str, float]:
        """The thresholds kept from an earlier run that apply again (the config still says what it said when
        they were set), handed to the stream; each said in one line."""
        applied = {}
        for target, kept in self._kept.get(stream).items() if self._kept and self.set_threshold else ():
            try:
                on, configured = float(kept[0]), float(kept[1])
            except (TypeError, ValueError, IndexError):
                continue
            if target not in thresholds or thresholds[target] != configured or on == configured:
                continue
            try:
                self.set_threshold(stream, target, on)
            except ValueError:
                continue
            applied[target] = on
            print(
                f"mqtt: {stream}: {target} threshold {on:g} (set over MQTT before, kept in {self.thresholds_file}; "
                f"the config says {configured:g})",
                file=sys.stderr,
                flush=True,
            )
        return applied

    def _event(self, stream: str, event: Event) -> None:
        seq = self._seq.get(stream, 0)
        self._seq[stream] = seq + 1
        body = event_message(event)
        self._publish(self._topic("events"), message_json("event", stream, seq, body), "event")
        state = self._topic(segment(stream), segment(event.label))
        if event.state == "end":
            self._publish(state, "OFF", "retained")
        else:
            if event.state == "start":
                self._publish(state, "ON", "retained")
                entity = {"event_type": event.label, **body}
                self._publish(self._topic(segment(stream), "event"), json.dumps(entity), "event")
            self._publish(state + "/score", str(event.peak), "latest")

    def _announce(self, stream: str, model_targets: list[str]) -> None:
        """Every target OFF, and the Home Assistant discovery configs of the stream's entities."""
        name = segment(stream)
        for target_segment in self._streams[name]:
            self._publish(self._topic(name, target_segment), "OFF", "retained")
        if not self.discovery_prefix:
            return
        device = {
            "identifiers": [f"{self.node}_{name}"],
            "name": f"htsat-live {stream}",
            "manufacturer": "htsat-live",
            "model": "HTS-AT sound event detector",
        }
        # QoS 1: Home Assistant subscribes (and sends thresholds) at QoS 1, so that nothing is lost on the way
        common = {"availability_topic": self.availability, "device": device, "qos": 1}
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
            if target not in model_targets:  # Loud: its threshold is a level, set in the config
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
        self._discover(
            "event",
            f"{self.node}_{name}_sound",
            {
                **common,
                "name": "Sound",
                "unique_id": f"{self.node}_{name}_sound",
                "state_topic": self._topic(name, "event"),
                "event_types": list(self._streams[name].values()),
            },
        )

    def _discover(self, component: str, object_id: str, config: dict) -> None:
        topic = f"{self.discovery_prefix}/{component}/{self.node}/{object_id}/config"
        self._publish(topic, json.dumps(config), "retained")

    def _topic(self, *parts: str) -> str:
        """P/N/parts...: the detector's own topic tree."""
        return "/".join((self.prefix, self.node, *parts))

    def _publish(self, topic: str, payload: str, kind: str) -> None:
        """Queue a message of a `kind`: "event" (each one counts: queued in order, the oldest dropped when the
        queue is full), "retained" (a state: only the newest matters, kept for every connection) or "latest"
        (a level or score: only the newest matters)."""
        with self._lock:
            if kind == "retained":
                self._retained[topic] = payload
            if not self.connected and kind != "event":  # the next connection sends the newest value first
                if kind == "latest":
                    self._latest[topic] = payload
                else:
                    self._changed.add(topic)
                return
            self._enqueue(topic, payload, kind)

    def _enqueue(self, topic: str, payload: str, kind: str) -> None:
        """(the caller holds the lock)"""
        if len(self._queue) >= self._limit:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append((topic, payload, kind))
        self._lock.notify_all()

    # --- the sender thread ------------------------------------------------------------------------

    def _send_loop(self) -> None:
        drain_until = None
        while True:
            with self._lock:
                while not self._ready():
                    if self._waited_long_enough_for_states():
                        self._enqueue(self.availability, "online", "retained")
                        self._online = True
                        continue
                    if self._closing:
                        drain_until = drain_until or time.monotonic() + DRAIN_SECONDS
                        if not self._queue or not self.connected or time.monotonic() > drain_until:
                            return
                    self._lock.wait(0.1)
                batch = self._first_batch() if self._resend else [self._queue.popleft()]
                self._handed += len(batch)
            for topic, payload, kind in batch:
                self._client.publish(topic, payload, qos=self.qos, retain=kind == "retained")

    def _first_batch(self) -> list[tuple[str, str, str]]:
        """What a new connection sends before the queue: the retained messages, the newest levels and scores,
        then `online` once every stream has announced its states (the caller holds the lock). Queued states,
        levels and scores give way to their newest values; queued events stay, in order, after these."""
        events = deque()
        for topic, payload, kind in self._queue:
            if kind == "latest":
                self._latest[topic] = payload
            elif kind == "event":
                events.append((topic, payload, kind))
        self._queue = events
        batch = [(topic, payload, "retained") for topic, payload in self._retained.items()]
        batch += [(topic, payload, "latest") for topic, payload in self._latest.items()]
        if not self._pending:
            batch.append((self.availability, "online", "retained"))
            self._online = True
        self._latest.clear()
        self._changed.clear()
        self._resend = False
        return batch

    def _waited_long_enough_for_states(self) -> bool:
        """A stream has not announced its states ANNOUNCE_WAIT s into a connection (the caller holds the lock)."""
        return (
            self.connected
            and bool(self._pending)
            and not self._online
            and not self._resend
            and time.monotonic() > self._connected_at + ANNOUNCE_WAIT
        )

    def _ready(self) -> bool:
        """Something to send, a link to send it on, and room in flight (the caller holds the lock)."""
        if not self.connected:
            return False
        return self._resend or (bool(self._queue) and self._handed - self._acknowledged < IN_FLIGHT)

    # --- paho's thread ----------------------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            with self._lock:
                self.state = "refused"
                self.last_error = f"broker {self.host}:{self.port} refused the connection: {reason_code}"
            log.warning("mqtt: %s", self.last_error)
            return
        client.subscribe(self._topic("+", "+", "threshold", "set"), qos=1)
        with self._lock:
            self.reconnects = self._connections
            self._connections += 1
            self.connected, self.state = True, "connected"
            self._warned = False
            self.last_error = None
            self._resend = True
            self._online = False
            self._connected_at = time.monotonic()
            self._lock.notify_all()

    def _on_connect_fail(self, client, userdata) -> None:
        reason = probe(self.host, self.port, 1.0) or f"cannot connect to the broker at {self.host}:{self.port}"
        with self._lock:
            self.state, self.last_error = "unreachable", reason
            warn, self._warned = not self._warned, True
        if warn:
            log.warning("mqtt: %s; detection goes on, MQTT messages wait until it answers", reason)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._lock:
            was_connected, self.connected = self.connected, False
            if was_connected and reason_code.is_failure:  # after a refusal, the refusal is the news
                self.state = "lost"
                self.last_error = f"lost broker {self.host}:{self.port}: {reason_code}"
                warn, self._warned = not self._warned and not self._closing, True
            else:
                warn = False
        if warn:
            log.warning("mqtt: %s; detection goes on, MQTT messages wait until it answers", self.last_error)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            self._acknowledged += 1
            self.sent += 1
            self._lock.notify_all()

    def _on_message(self, client, userdata, message) -> None:
        """A threshold written by Home Assistant (P/N/<stream>/<target>/threshold/set)."""
        parts = message.topic[len(self._topic()) + 1 :].split("/")
        target = self._streams.get(parts[0], {}).get(parts[1]) if len(parts) == 4 else None
        if target is None or self.set_threshold is None:
            return
        stream = self._names[parts[0]]
        try:
            on = float(message.payload)
            self.set_threshold(stream, target, on)
        except ValueError as error:  # not a number, or out of 0..1: the threshold in force stays
            log.warning("mqtt: %s: %s", message.topic, error)
            return
        configured = self._configured.get(stream, {}).get(target, on)
        self._kept.keep(stream, target, rounded(on), configured)
        was = self._thresholds.get(stream, {}).get(target, configured)
        print(
            f"mqtt: {stream}: {target} threshold set to {rounded(on):g} over MQTT (was {was:g}; "
            f"kept in {self.thresholds_file})",
            file=sys.stderr,
            flush=True,
        )
