"""MQTT and Home Assistant discovery against a real mosquitto broker (started per test on a free loopback
port) and a real paho subscriber: confirmed events, states and discovery arrive; a broker that is down at
start or restarts mid-stream costs nothing but the oldest messages of a full queue, counted; logins."""

import json
import subprocess
import sys
import threading
import time

import numpy as np
import paho.mqtt.client as paho
import pytest
import soundfile

from htsat_live.model import DEMO_RECORDING, SAMPLE_RATE, load_model, read_clip
from htsat_live.stream.config import MqttConfig, load_config, with_overrides
from htsat_live.stream.events import Event
from htsat_live.stream.messages import EventMessage
from htsat_live.stream.output import Listener
from htsat_live.stream.outputs.mqtt import MqttOutput, segment
from htsat_live.stream.pipeline import Pipeline, ThresholdChanges

CLIENT = "test-node"


class Subscriber:
    """A paho client subscribed to everything, keeping (topic, payload, retain) in arrival order. Its session
    persists (fixed id, QoS 1), so the broker keeps what arrives while it reconnects after a restart."""

    def __init__(self, broker, user: str = "", password: str = ""):
        self.messages: list[tuple[str, str, bool]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-subscriber", clean_session=False)
        if user:
            self.client.username_pw_set(user, password)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda client, *_: client.subscribe("#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._keep
        self.client.connect_async("127.0.0.1", broker.port)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise AssertionError("the test subscriber did not subscribe")

    def _keep(self, client, userdata, message) -> None:
        with self.lock:
            self.messages.append((message.topic, message.payload.decode(), bool(message.retain)))

    def payloads(self, topic: str) -> list[str]:
        with self.lock:
            return [payload for t, payload, _ in self.messages if t == topic]

    def topics(self) -> set[str]:
        with self.lock:
            return {t for t, _, _ in self.messages}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def output_config(broker, **settings) -> MqttConfig:
    return MqttConfig(url=broker.url, client_id=CLIENT, **settings)


def stream_config(**settings):
    return with_overrides(load_config(None), {"publish.enabled": False, **settings})


def test_confirmed_events_states_level_and_discovery_arrive(mosquitto, wait_until):
    broker = mosquitto()
    subscriber = Subscriber(broker)
    model = load_model()
    events = []
    keep_events = Listener(lambda topic, stream, body: events.append(body) if topic == "event" else None)
    pipeline = Pipeline(
        stream_config(**{"source.fast": True}),
        model,
        [str(DEMO_RECORDING)],
        outputs=[MqttOutput(output_config(broker)), keep_events],
    )
    try:
        pipeline.start()
        assert pipeline.wait(300)
    finally:
        report = pipeline.stop()["demo.wav"]
    wait_until(lambda: "offline" in subscriber.payloads("htsat-live/availability"), 30, "availability offline")
    published = [json.loads(p) for p in subscriber.payloads("htsat-live/events")]
    subscriber.close()
    assert subscriber.payloads("htsat-live/availability")[0] == "online"
    assert all(p["confirmed"] and p["stream"] == "demo.wav" and p["schema"] == 1 for p in published)
    starts = [p for p in published if p["state"] == "start"]
    assert len(starts) == report.confirmed_events < report.events  # the provisional starts stayed home
    assert {p["id"] for p in published if p["state"] == "end"} == {p["id"] for p in starts}
    assert sum(1 for e in events if e["state"] == "end" and e["cancelled"] and not e["confirmed"]) >= 10
    speech = subscriber.payloads("htsat-live/demo_wav/speech")
    assert speech[0] == "OFF" and "ON" in speech and speech[-1] == "OFF"
    assert float(subscriber.payloads("htsat-live/demo_wav/speech/score")[0]) > 0.4
    assert all(-120 <= float(level) <= 0 for level in subscriber.payloads("htsat-live/demo_wav/level"))
    for label in model.labels:
        config = json.loads(
            one_config(subscriber, f"homeassistant/binary_sensor/{CLIENT}/{CLIENT}_demo_wav_{segment(label)}/config")
        )
        assert (config["name"], config["state_topic"]) == (label, f"htsat-live/demo_wav/{segment(label)}")
        assert config["unique_id"] == f"{CLIENT}_demo_wav_{segment(label)}"
        assert config["availability_topic"] == "htsat-live/availability" and config["device"]["identifiers"]
        assert subscriber.payloads(f"homeassistant/number/{CLIENT}/{CLIENT}_demo_wav_{segment(label)}_threshold/config")
    level = one_config(subscriber, f"homeassistant/sensor/{CLIENT}/{CLIENT}_demo_wav_level/config")
    assert json.loads(level)["unit_of_measurement"] == "dBFS"


def one_config(subscriber, topic: str) -> str:
    """The discovery config published on `topic`: at least once, and always the same (a reconnection of the
    output or of the subscriber under load delivers the retained config again, by design)."""
    configs = subscriber.payloads(topic)
    assert configs and len(set(configs)) == 1, configs
    return configs[0]


def confirmed_start(id: int, label: str) -> EventMessage:
    return EventMessage(
        "mic",
        Event(
            id=id,
            state="start",
            label=label,
            classes=(0,),
            onset_frame=0,
            offset_frame=1,
            onset=0.0,
            offset=0.01,
            onset_wall=0.0,
            offset_wall=0.01,
            peak=0.9,
            mean=0.9,
            threshold=0.5,
            final=False,
            cancelled=False,
            latency=1.0,
            confirmed=True,
            confirm_latency=1.0,
        ),
    )


def test_a_broker_down_at_start_gets_the_newest_messages_of_a_bounded_queue(mosquitto, wait_until):
    broker = mosquitto()
    subscriber = Subscriber(broker)  # its session (and what the broker keeps for it) outlives the broker's restart
    subscriber.client.disconnect()
    subscriber.client.loop_stop()
    broker.stop()
    output = MqttOutput(output_config(broker, queue=6))
    try:
        for id in range(1, 11):  # 3 messages each (events, ON, score): 30 for a queue of 6
            started = time.monotonic()
            output.handle(confirmed_start(id, f"t{id}"))
            assert time.monotonic() - started < 0.5  # the broker's absence never holds the stream up
        assert output.counters() | {"error": None} == {
            "connected": False,
            "queue": 6,
            "sent": 0,
            "dropped": 24,
            "reconnects": 0,
            "error": None,
        }
        broker.start()
        subscriber = Subscriber(broker)
        wait_until(lambda: len(subscriber.payloads("htsat-live/events")) == 2, 30, "the queued events")
    finally:
        output.close()
        subscriber.close()
    assert [json.loads(p)["id"] for p in subscriber.payloads("htsat-live/events")] == [9, 10]  # oldest dropped
    assert subscriber.payloads("htsat-live/mic/t1") == ["ON"]  # retained states are sent again on connecting
    assert output.counters()["queue"] == 0


def test_a_broker_restart_mid_stream_delays_messages_but_loses_none(mosquitto, tmp_path, wait_until):
    broker = mosquitto()
    subscriber = Subscriber(broker)
    excerpt = tmp_path / "excerpt.wav"
    soundfile.write(excerpt, read_clip(DEMO_RECORDING)[: 24 * SAMPLE_RATE], SAMPLE_RATE)  # Water, then an Alarm
    statuses = []
    output = MqttOutput(output_config(broker))
    keep_statuses = Listener(lambda topic, stream, body: statuses.append(body) if topic == "status" else None)
    pipeline = Pipeline(stream_config(), load_model(), [str(excerpt)], outputs=[output, keep_statuses])  # in real time
    pipeline.start()
    try:
        wait_until(lambda: subscriber.payloads("htsat-live/excerpt_wav/level"), 30, "the first level")
        broker.stop()
        wait_until(lambda: statuses and statuses[-1]["mqtt"]["queue"] >= 3, 30, "messages queued while it is down")
        broker.start()
        wait_until(lambda: output.counters()["connected"], 30, "the reconnection")
        assert pipeline.wait(120)
    finally:
        report = pipeline.stop()["excerpt.wav"]
    counters = output.counters()
    sent = collapsed([str(status["level_dbfs"]) for status in statuses])
    wait_until(
        lambda: collapsed(subscriber.payloads("htsat-live/excerpt_wav/level")) == sent, 30, "every level message"
    )
    subscriber.close()
    assert counters["reconnects"] >= 1 and counters["dropped"] == 0
    assert report.skipped_windows == 0 and report.windows == 20  # detection never stalled
    published = [json.loads(p) for p in subscriber.payloads("htsat-live/events")]
    assert len({p["id"] for p in published if p["state"] == "start"}) == report.confirmed_events >= 2
    assert collapsed([p["seq"] for p in published]) == list(range(max(p["seq"] for p in published) + 1))  # none lost


def collapsed(values: list) -> list:
    """`values` without immediate repeats: QoS 1 is "at least once", so a message in flight when the broker
    went down may arrive twice."""
    return [value for i, value in enumerate(values) if i == 0 or value != values[i - 1]]


def test_a_login_with_a_password_file_and_a_refused_one(mosquitto, tmp_path, wait_until):
    broker = mosquitto(users={"htsat": "s3cret"})
    subscriber = Subscriber(broker, "htsat", "s3cret")
    (tmp_path / "good").write_text("s3cret\n")
    (tmp_path / "bad").write_text("guess\n")
    good = MqttOutput(output_config(broker, username="htsat", password_file=str(tmp_path / "good")))
    bad = MqttOutput(
        MqttConfig(url=broker.url, client_id="intruder", username="htsat", password_file=str(tmp_path / "bad"))
    )
    try:
        wait_until(lambda: good.counters()["connected"], 30, "the login")
        wait_until(lambda: bad.counters()["error"] is not None, 30, "the refusal")
        good.handle(confirmed_start(1, "Dog"))
        bad.handle(confirmed_start(1, "Cat"))
        wait_until(lambda: subscriber.payloads("htsat-live/mic/dog") == ["ON"], 30, "the event")
    finally:
        good.close()
        bad.close()
        subscriber.close()
    assert "authori" in bad.counters()["error"].lower() and not bad.counters()["connected"]
    assert "htsat-live/mic/cat" not in subscriber.topics()
    with pytest.raises(ValueError, match="mqtt.password_file: cannot read"):
        MqttOutput(output_config(broker, username="htsat", password_file=str(tmp_path / "absent")))


def test_a_threshold_set_from_home_assistant_reaches_the_detector_and_is_echoed(
    mosquitto, tmp_path, tiny_checkpoint, wait_until
):
    broker = mosquitto()
    subscriber = Subscriber(broker)
    noise = (0.1 * np.random.default_rng(0).standard_normal(30 * SAMPLE_RATE)).astype(np.float32)
    soundfile.write(tmp_path / "noise.wav", noise, SAMPLE_RATE)
    statuses = []
    keep_statuses = Listener(lambda topic, stream, body: statuses.append(body) if topic == "status" else None)
    thresholds = ThresholdChanges()  # the MQTT output sets the thresholds of the pipeline's streams through it
    pipeline = Pipeline(
        stream_config(),
        load_model(tiny_checkpoint),
        [str(tmp_path / "noise.wav")],
        outputs=[MqttOutput(output_config(broker), thresholds.set), keep_statuses],
        thresholds=thresholds,
    )
    pipeline.start()
    try:
        state = "htsat-live/noise_wav/class_3/threshold"
        wait_until(lambda: subscriber.payloads(state), 30, "the threshold state")
        subscriber.client.publish(state + "/set", "0.42", qos=1)
        subscriber.client.publish("htsat-live/noise_wav/class_2/threshold/set", "not a number", qos=1)
        wait_until(lambda: subscriber.payloads(state)[-1] == "0.42", 30, "the echo of the new threshold")
    finally:
        pipeline.stop()
        subscriber.close()
    assert statuses[-1]["thresholds"]["class_3"][0] == pytest.approx(0.42)
    assert statuses[-1]["thresholds"]["class_2"][0] == pytest.approx(0.5)  # a bad value changes nothing


def test_detect_with_an_unreadable_password_file_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "htsat_live.cli",
            "detect",
            str(DEMO_RECORDING),
            "--fast",
            "--set",
            "publish.enabled=false",
            "--set",
            "mqtt.url='mqtt://127.0.0.1:1'",
            "--set",
            "mqtt.username=me",
            "--set",
            f"mqtt.password_file='{tmp_path}/absent'",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "mqtt.password_file: cannot read" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
