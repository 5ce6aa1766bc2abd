"""MQTT and Home Assistant discovery against a real mosquitto broker (started per test on a free loopback
port), real paho subscribers and real detector processes: confirmed events, states and discovery arrive;
states go out before `online` on every connection; detectors on one broker keep apart; a broker that is down
at start or restarts mid-stream costs nothing but the oldest messages of a full queue, counted; what cannot
be sent is counted and said; logins; bad settings; thresholds set over MQTT kept across restarts."""

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import paho.mqtt.client as paho
import pytest
import soundfile

from htsat_live.model import DEMO_RECORDING, SAMPLE_RATE, load_model, read_clip
from htsat_live.stream.config import MqttConfig, load_config, with_overrides
from htsat_live.stream.events import Event
from htsat_live.stream.messages import EventMessage, Message
from htsat_live.stream.output import Listener
from htsat_live.stream.outputs.mqtt import MqttOutput, segment, thresholds_path
from htsat_live.stream.pipeline import Pipeline, ThresholdChanges

CLIENT = "test-node"
BASE = f"htsat-live/{CLIENT}"  # every topic of the detector lies under its node id
AVAILABILITY = f"{BASE}/availability"


@pytest.fixture(autouse=True)
def own_state_home(tmp_path, monkeypatch):
    """Each test keeps its thresholds set over MQTT in its own $XDG_STATE_HOME."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state-home"))


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
    wait_until(lambda: "offline" in subscriber.payloads(AVAILABILITY), 30, "availability offline")
    published = [json.loads(p) for p in subscriber.payloads(f"{BASE}/events")]
    subscriber.close()
    assert subscriber.payloads(AVAILABILITY)[0] == "online"
    with subscriber.lock:
        order = [topic for topic, _, _ in subscriber.messages]
    assert order.index(f"{BASE}/demo_wav/speech") < order.index(AVAILABILITY)  # the states before `online`
    assert all(p["confirmed"] and p["stream"] == "demo.wav" and p["schema"] == 1 for p in published)
    starts = [p for p in published if p["state"] == "start"]
    assert len(starts) == report.confirmed_events < report.events  # the provisional starts stayed home
    assert {p["id"] for p in published if p["state"] == "end"} == {p["id"] for p in starts}
    assert sum(1 for e in events if e["state"] == "end" and e["cancelled"] and not e["confirmed"]) >= 10
    speech = subscriber.payloads(f"{BASE}/demo_wav/speech")
    assert speech[0] == "OFF" and "ON" in speech and speech[-1] == "OFF"
    assert float(subscriber.payloads(f"{BASE}/demo_wav/speech/score")[0]) > 0.4
    assert all(-120 <= float(level) <= 0 for level in subscriber.payloads(f"{BASE}/demo_wav/level"))
    for label in model.labels:
        config = json.loads(
            one_config(subscriber, f"homeassistant/binary_sensor/{CLIENT}/{CLIENT}_demo_wav_{segment(label)}/config")
        )
        assert (config["name"], config["state_topic"]) == (label, f"{BASE}/demo_wav/{segment(label)}")
        assert config["unique_id"] == f"{CLIENT}_demo_wav_{segment(label)}"
        assert config["availability_topic"] == AVAILABILITY and config["device"]["identifiers"]
        assert config["qos"] == 1
        assert subscriber.payloads(f"homeassistant/number/{CLIENT}/{CLIENT}_demo_wav_{segment(label)}_threshold/config")
    level = one_config(subscriber, f"homeassistant/sensor/{CLIENT}/{CLIENT}_demo_wav_level/config")
    assert json.loads(level)["unit_of_measurement"] == "dBFS"
    sound = json.loads(one_config(subscriber, f"homeassistant/event/{CLIENT}/{CLIENT}_demo_wav_sound/config"))
    assert sound["state_topic"] == f"{BASE}/demo_wav/event" and "Speech" in sound["event_types"]
    fired = [json.loads(p) for p in subscriber.payloads(f"{BASE}/demo_wav/event")]
    assert len(fired) == len(starts) and {f["event_type"] for f in fired} <= set(sound["event_types"])


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
        for id in range(1, 11):  # 2 queued messages each (P/events, the event entity's): 20 for a queue of 6
            started = time.monotonic()
            output.handle(confirmed_start(id, f"t{id}"))  # its state (ON) and score: only the newest wait
            assert time.monotonic() - started < 0.5  # the broker's absence never holds the stream up
        counters = output.counters()
        assert "cannot reach the broker" in counters["error"] and "refused" in counters["error"]
        assert counters | {"error": None} == {
            "state": "unreachable",
            "connected": False,
            "queue": 6,
            "sent": 0,
            "dropped": 14,
            "unsent": 0,
            "reconnects": 0,
            "error": None,
        }
        broker.start()
        subscriber = Subscriber(broker)
        wait_until(lambda: len(subscriber.payloads(f"{BASE}/events")) == 3, 30, "the queued events")
    finally:
        output.close()
        subscriber.close()
    assert [json.loads(p)["id"] for p in subscriber.payloads(f"{BASE}/events")] == [8, 9, 10]  # oldest dropped
    assert subscriber.payloads(f"{BASE}/mic/t1") == ["ON"]  # retained states are sent again on connecting
    assert output.counters()["queue"] == output.counters()["unsent"] == 0


def test_a_broker_restart_mid_stream_delays_events_loses_none_and_sends_only_the_newest_level(
    mosquitto, tmp_path, wait_until
):
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
        wait_until(lambda: subscriber.payloads(f"{BASE}/excerpt_wav/level"), 30, "the first level")
        broker.stop()
        wait_until(
            lambda: sum(not status["mqtt"]["connected"] for status in statuses) >= 3, 30, "levels while it is down"
        )
        broker.start()
        wait_until(lambda: output.counters()["connected"], 30, "the reconnection")
        assert pipeline.wait(120)
    finally:
        report = pipeline.stop()["excerpt.wav"]
    counters = output.counters()
    sent = collapsed([str(status["level_dbfs"]) for status in statuses])
    down = sum(not status["mqtt"]["connected"] for status in statuses)
    levels = f"{BASE}/excerpt_wav/level"
    wait_until(lambda: collapsed(subscriber.payloads(levels))[-1:] == sent[-1:], 30, "the last level")
    subscriber.close()
    received = collapsed(subscriber.payloads(levels))
    assert is_subsequence(received, sent)
    assert len(received) <= len(sent) - down + 2  # of the levels while it was down, the newest (and one in flight)
    assert counters["reconnects"] >= 1 and counters["dropped"] == counters["unsent"] == 0
    assert report.skipped_windows == 0 and report.windows == 20  # detection never stalled
    published = [json.loads(p) for p in subscriber.payloads(f"{BASE}/events")]
    assert len({p["id"] for p in published if p["state"] == "start"}) == report.confirmed_events >= 2
    assert collapsed([p["seq"] for p in published]) == list(range(max(p["seq"] for p in published) + 1))  # none lost


def is_subsequence(part: list, whole: list) -> bool:
    remaining = iter(whole)
    return all(any(value == other for other in remaining) for value in part)


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
        good.handle(confirmed_start(1, "Dog"))  # the first message starts the connection
        bad.handle(confirmed_start(1, "Cat"))
        wait_until(lambda: good.counters()["connected"], 30, "the login")
        wait_until(lambda: bad.counters()["error"] is not None, 30, "the refusal")
        wait_until(lambda: subscriber.payloads(f"{BASE}/mic/dog") == ["ON"], 30, "the event")
    finally:
        good.close()
        bad.close()
        subscriber.close()
    assert "authori" in bad.counters()["error"].lower() and not bad.counters()["connected"]
    assert f"{BASE}/mic/cat" not in subscriber.topics()
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
        state = f"{BASE}/noise_wav/class_3/threshold"
        wait_until(lambda: subscriber.payloads(state), 30, "the threshold state")
        subscriber.client.publish(state + "/set", "0.42", qos=1)
        subscriber.client.publish(f"{BASE}/noise_wav/class_2/threshold/set", "not a number", qos=1)
        wait_until(lambda: subscriber.payloads(state)[-1] == "0.42", 30, "the echo of the new threshold")
    finally:
        pipeline.stop()
        subscriber.close()
    assert statuses[-1]["thresholds"]["class_3"][0] == pytest.approx(0.42)
    assert statuses[-1]["thresholds"]["class_2"][0] == pytest.approx(0.5)  # a bad value changes nothing


def test_detect_with_an_unreadable_password_file_is_one_line_and_exit_2(tmp_path, run_demo_detect):
    result = run_demo_detect(
        "mqtt.url='mqtt://127.0.0.1:1'", "mqtt.username=me", f"mqtt.password_file='{tmp_path}/absent'"
    )
    assert result.returncode == 2
    assert "mqtt.password_file: cannot read" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def status_body(level: float = -30.0, stream_seconds: float = 1.0, **thresholds: float) -> dict:
    """A `status` body with what the MQTT output reads of it."""
    return {
        "thresholds": {target: [on, on * 0.5] for target, on in (thresholds or {"Dog": 0.5}).items()},
        "loudness": None,
        "stream_seconds": stream_seconds,
        "level_dbfs": level,
    }


def arrived_after(subscriber, mark: int) -> list[tuple[str, str]]:
    """(topic, payload) of the messages the subscriber got after its first `mark`, live ones only (a retained
    copy the broker hands a subscription that is made again says nothing about the publisher's order)."""
    with subscriber.lock:
        return [(topic, payload) for topic, payload, retained in subscriber.messages[mark:] if not retained]


def test_states_go_out_before_online_on_every_reconnection(mosquitto, wait_until):
    broker = mosquitto()
    subscriber = Subscriber(broker)
    output = MqttOutput(output_config(broker))
    output.attach("mic", None, ["Dog"])
    try:
        output.handle(Message("status", "mic", status_body()))
        wait_until(lambda: subscriber.payloads(AVAILABILITY) == ["online"], 30, "online")
        first = arrived_after(subscriber, 0)
        assert first.index((f"{BASE}/mic/dog", "OFF")) < first.index((AVAILABILITY, "online"))
        output.handle(confirmed_start(1, "Dog"))
        wait_until(lambda: subscriber.payloads(f"{BASE}/mic/dog") == ["OFF", "ON"], 30, "the ON state")
        for reconnection in range(1, 3):  # the link taken away while the subscriber stays: it sees every message
            with subscriber.lock:
                mark = len(subscriber.messages)
            take_over(broker, CLIENT)
            wait_until(lambda n=reconnection: output.counters()["reconnects"] == n, 30, "the reconnection")
            wait_until(lambda m=mark: (AVAILABILITY, "online") in arrived_after(subscriber, m), 30, "online again")
            again = arrived_after(subscriber, mark)
            online = again.index((AVAILABILITY, "online"))
            assert again.index((f"{BASE}/mic/dog", "ON")) < online  # the state first, then `online`
            topics = [topic for topic, _ in again]
            assert topics.index(f"homeassistant/binary_sensor/{CLIENT}/{CLIENT}_mic_dog/config") < online
    finally:
        output.close()
        subscriber.close()


def take_over(broker, client_id: str) -> None:
    """Connect with `client_id` and leave at once: the broker drops the client of that id (a lost link)."""
    kicker = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
    kicker.connect("127.0.0.1", broker.port)
    kicker.loop_start()
    deadline = time.monotonic() + 10
    while not kicker.is_connected() and time.monotonic() < deadline:
        time.sleep(0.01)
    kicker.disconnect()
    kicker.loop_stop()


DETECTOR = """
import json, sys, time
from htsat_live.stream.config import MqttConfig
from htsat_live.stream.events import Event
from htsat_live.stream.messages import EventMessage, Message
from htsat_live.stream.outputs.mqtt import MqttOutput
url, stream, event = sys.argv[1:]
output = MqttOutput(MqttConfig(url=url))  # the default client id and availability topic
output.attach(stream, None, ["Dog"])
output.handle(Message("status", stream, {"thresholds": {"Dog": [0.5, 0.25]}, "loudness": None,
    "stream_seconds": 1.0, "level_dbfs": -30.0}))
if event:
    output.handle(EventMessage(stream, Event(**json.loads(event))))
print(output.availability, flush=True)
time.sleep(600)
"""


def own_host_name(host: str) -> list[str]:
    """The start of a command line that runs the rest in a UTS namespace of its own, whose host name is `host`
    (another machine, as far as the host name goes); the test is skipped where namespaces cannot be made."""
    command = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', host]
    try:
        made = subprocess.run(command + ["true"], capture_output=True, timeout=10).returncode == 0
    except FileNotFoundError:
        made = False
    if not made:
        pytest.skip("needs a UTS namespace of its own (unshare --uts, as root)")
    return command


def start_detector(broker, stream: str, on: bool, host: list[str] = ()) -> tuple[subprocess.Popen, str]:
    """A detector process with default MQTT settings but the url, on this host or under `host`
    (own_host_name); (the process, its availability topic)."""
    process = subprocess.Popen(
        [
            *host,
            sys.executable,
            "-c",
            DETECTOR,
            broker.url,
            stream,
            json.dumps(asdict(confirmed_start(1, "Dog").event)) if on else "",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[3],
    )
    return process, process.stdout.readline().strip()


def test_two_detectors_on_one_broker_keep_apart_and_a_killed_one_comes_back_off_before_online(mosquitto, wait_until):
    broker = mosquitto()
    subscriber = Subscriber(broker)
    kitchen, kitchen_availability = start_detector(broker, "kitchen", on=True)
    hall, hall_availability = start_detector(broker, "hall", on=False)
    processes = [kitchen, hall]
    try:
        host = segment(socket.gethostname())
        assert kitchen_availability == f"htsat-live/htsat-live-{host}-kitchen/availability"
        assert hall_availability == f"htsat-live/htsat-live-{host}-hall/availability"
        for topic in (kitchen_availability, hall_availability):
            wait_until(lambda topic=topic: subscriber.payloads(topic)[-1:] == ["online"], 30, f"{topic} online")
        kitchen_dog = kitchen_availability.replace("/availability", "/kitchen/dog")  # under its node id
        wait_until(lambda: subscriber.payloads(kitchen_dog)[-1:] == ["ON"], 30, "the kitchen's ON")
        kitchen.send_signal(signal.SIGKILL)
        kitchen.wait(10)
        wait_until(lambda: subscriber.payloads(kitchen_availability)[-1:] == ["offline"], 30, "the last will")
        time.sleep(0.5)
        assert subscriber.payloads(hall_availability)[-1] == "online"  # the other detector stays available
        with subscriber.lock:
            mark = len(subscriber.messages)
        kitchen, _ = start_detector(broker, "kitchen", on=False)
        processes.append(kitchen)
        wait_until(lambda: (kitchen_availability, "online") in arrived_after(subscriber, mark), 30, "online again")
        again = arrived_after(subscriber, mark)
        assert again.index((kitchen_dog, "OFF")) < again.index((kitchen_availability, "online"))
        assert (kitchen_dog, "ON") not in again
    finally:
        for process in processes:
            process.kill()
            process.wait(10)
        subscriber.close()


@pytest.mark.timeout(180)
def test_detectors_on_two_hosts_with_the_same_stream_names_share_no_topic(mosquitto, wait_until):
    broker = mosquitto()
    subscriber = Subscriber(broker)
    kitchen, kitchen_availability = start_detector(broker, "mic", on=True, host=own_host_name("kitchen-pi"))
    garage, garage_availability = start_detector(broker, "mic", on=False, host=own_host_name("garage-pi"))
    processes = [kitchen, garage]
    try:
        assert kitchen_availability == "htsat-live/htsat-live-kitchen-pi-mic/availability"
        assert garage_availability == "htsat-live/htsat-live-garage-pi-mic/availability"
        kitchen_dog = kitchen_availability.replace("/availability", "/mic/dog")
        garage_dog = garage_availability.replace("/availability", "/mic/dog")
        for topic in (kitchen_availability, garage_availability):
            wait_until(lambda topic=topic: subscriber.payloads(topic)[-1:] == ["online"], 30, f"{topic} online")
        wait_until(lambda: subscriber.payloads(kitchen_dog)[-1:] == ["ON"], 30, "the kitchen's ON")
        assert subscriber.payloads(garage_dog) == ["OFF"]  # the kitchen's event is not the garage's
        discovered = {topic for topic in subscriber.topics() if topic.startswith("homeassistant/binary_sensor/")}
        assert len(discovered) == 2  # one entity each: the garage's config did not replace the kitchen's
        kitchen.send_signal(signal.SIGKILL)
        kitchen.wait(10)
        wait_until(lambda: subscriber.payloads(kitchen_availability)[-1:] == ["offline"], 30, "the last will")
        time.sleep(0.5)
        assert subscriber.payloads(garage_availability)[-1] == "online"  # the garage stays available
        assert subscriber.payloads(garage_dog) == ["OFF"]
    finally:
        for process in processes:
            process.kill()
            process.wait(10)
        subscriber.close()


def test_bad_mqtt_settings_are_refused_naming_the_key(tmp_path):
    (tmp_path / "password").write_text("s3cret\n")
    cases = {
        "mqtt.url: the port must be 1..65535": {"url": "mqtt://127.0.0.1:99999"},
        "mqtt.url: the port must be 1..65535, got 'mqtt://127.0.0.1:0'": {"url": "mqtt://127.0.0.1:0"},
        "mqtt.password_file: a password needs mqtt.username": {"password_file": str(tmp_path / "password")},
        "mqtt.password_file: a password needs mqtt.username, which": {"password_file": str(tmp_path / "absent")},
        "mqtt.password_file: cannot read": {"username": "me", "password_file": str(tmp_path / "absent")},
        "mqtt.topic_prefix: must not contain +, #": {"topic_prefix": "home/#"},
        "mqtt.client_id: must not contain +, #": {"client_id": "a+b"},
    }
    for expected, settings in cases.items():
        with pytest.raises(ValueError, match=re.escape(expected)):
            MqttOutput(MqttConfig(**{"url": "mqtt://127.0.0.1:1", **settings}))
    result = subprocess.run(
        [sys.executable, "-m", "htsat_live.cli", "detect", str(DEMO_RECORDING), "--fast"]
        + ["--set", "publish.enabled=false", "--set", "mqtt.url='mqtt://127.0.0.1:99999'"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip() == "htsat-live detect: mqtt.url: the port must be 1..65535, got 'mqtt://127.0.0.1:99999'"
    )


def test_an_unresolvable_broker_is_a_warning_the_run_goes_on_and_what_it_could_not_send_is_counted(tmp_path):
    excerpt = tmp_path / "excerpt.wav"
    soundfile.write(excerpt, read_clip(DEMO_RECORDING)[: 24 * SAMPLE_RATE], SAMPLE_RATE)  # Water, then an Alarm
    result = subprocess.run(
        [sys.executable, "-m", "htsat_live.cli", "detect", str(excerpt), "--fast"]
        + ["--set", "publish.enabled=false", "--set", "mqtt.url='mqtt://no-such-host.invalid'"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    warning = [line for line in result.stderr.splitlines() if "no-such-host.invalid" in line][0]
    assert warning.startswith("htsat-live: mqtt: cannot resolve the broker's host 'no-such-host.invalid'")
    assert "(mqtt.url); detection goes on" in warning
    final = [line for line in result.stdout.splitlines() if line.startswith("mqtt: ")]
    assert len(final) == 1, result.stdout
    counters = dict(item.split("=", 1) for item in final[0].removeprefix("mqtt: ").split())
    assert counters["state"] == "unreachable" and counters["sent"] == "0" and int(counters["unsent"]) > 0
    assert f"mqtt: {counters['unsent']} messages not sent" in result.stderr


def test_closing_with_the_broker_down_counts_and_says_what_is_left(mosquitto, wait_until, caplog):
    broker = mosquitto()
    subscriber = Subscriber(broker)
    output = MqttOutput(output_config(broker))
    output.attach("mic", None, ["Dog"])
    output.handle(Message("status", "mic", status_body()))
    wait_until(lambda: subscriber.payloads(AVAILABILITY) == ["online"], 30, "online")
    # every message of the connection acknowledged, so none is still in flight when the broker stops
    wait_until(lambda: output.counters()["sent"] == len(subscriber.messages), 30, "the acknowledgements")
    subscriber.close()
    broker.stop()
    wait_until(lambda: not output.counters()["connected"], 30, "the lost link")
    for id in range(1, 6):  # 2 queued messages each, the newest state and score: 12 waiting
        output.handle(confirmed_start(id, "Dog"))
    with caplog.at_level(logging.WARNING, logger="htsat_live.stream.outputs.mqtt"):
        started = time.monotonic()
        output.close()
    assert time.monotonic() - started < 5  # the drain has a deadline
    counters = output.counters()
    assert (counters["queue"], counters["unsent"], counters["dropped"], counters["state"]) == (10, 12, 0, "lost")
    assert any("mqtt: 12 messages not sent (10 queued events" in record.message for record in caplog.records)


def test_no_level_before_audio_and_thresholds_as_people_read_them(mosquitto, wait_until):
    broker = mosquitto()
    subscriber = Subscriber(broker)
    output = MqttOutput(output_config(broker))
    output.attach("mic", None, ["Dog"])
    try:
        output.handle(Message("status", "mic", status_body(-120.0, 0.0, Dog=float(np.float32(0.45)))))
        wait_until(lambda: subscriber.payloads(AVAILABILITY) == ["online"], 30, "online")
        output.handle(Message("status", "mic", status_body(-31.5, 1.0, Dog=float(np.float32(0.45)))))
        wait_until(lambda: subscriber.payloads(f"{BASE}/mic/level"), 30, "the first level")
    finally:
        output.close()
        subscriber.close()
    assert subscriber.payloads(f"{BASE}/mic/level") == ["-31.5"]  # no placeholder before the audio
    assert subscriber.payloads(f"{BASE}/mic/dog/threshold") == ["0.45"]  # not 0.44999998807907104
    assert (output.counters()["state"], output.counters()["unsent"]) == ("closed", 0)


def test_a_threshold_set_over_mqtt_is_said_and_kept_across_restarts_while_the_config_says_the_same(
    mosquitto, wait_until, capfd
):
    broker = mosquitto()
    subscriber = Subscriber(broker)
    changes = ThresholdChanges()
    changes.add_stream("mic", ["Dog"])
    output = MqttOutput(output_config(broker), changes.set)
    output.attach("mic", None, ["Dog"])
    try:
        output.handle(Message("status", "mic", status_body(Dog=0.5)))
        wait_until(lambda: subscriber.payloads(f"{BASE}/mic/dog/threshold") == ["0.5"], 30, "the threshold")
        subscriber.client.publish(f"{BASE}/mic/dog/threshold/set", "0.42", qos=1)
        wait_until(lambda: changes.take("mic") == [("Dog", 0.42)], 30, "the change")
    finally:
        output.close()
    kept = thresholds_path()
    assert str(kept).startswith(os.environ["XDG_STATE_HOME"]) and kept.name == "mqtt-thresholds.json"
    assert json.loads(kept.read_text()) == {CLIENT: {"mic": {"Dog": [0.42, 0.5]}}}
    said = capfd.readouterr().err
    assert f"mqtt: mic: Dog threshold set to 0.42 over MQTT (was 0.5; kept in {kept})" in said
    for configured, applied in ((0.5, [("Dog", 0.42)]), (0.6, [])):  # a restart; then the config edited
        again = ThresholdChanges()
        again.add_stream("mic", ["Dog"])
        output = MqttOutput(output_config(broker), again.set)
        output.attach("mic", None, ["Dog"])
        try:
            output.handle(Message("status", "mic", status_body(Dog=configured)))
            assert again.take("mic") == applied
            echo = f"{applied[0][1] if applied else configured:g}"
            wait_until(lambda echo=echo: subscriber.payloads(f"{BASE}/mic/dog/threshold")[-1:] == [echo], 30, echo)
        finally:
            output.close()
    subscriber.close()
    said = capfd.readouterr().err
    assert said.count("mqtt: mic: Dog threshold 0.42 (set over MQTT before") == 1


def test_online_waits_for_every_stream_but_not_for_ever(mosquitto, wait_until, monkeypatch):
    monkeypatch.setattr("htsat_live.stream.outputs.mqtt.ANNOUNCE_WAIT", 2.0)
    broker = mosquitto()
    subscriber = Subscriber(broker)
    output = MqttOutput(output_config(broker))
    output.attach("kitchen", None, ["Dog"])
    output.attach("hall", None, ["Dog"])  # never reports
    try:
        output.handle(Message("status", "kitchen", status_body()))
        wait_until(lambda: subscriber.payloads(f"{BASE}/kitchen/dog") == ["OFF"], 30, "the kitchen's state")
        connected = time.monotonic()
        assert subscriber.payloads(AVAILABILITY) == []  # the hall has not said its states
        wait_until(lambda: subscriber.payloads(AVAILABILITY) == ["online"], 30, "online after the wait")
        assert time.monotonic() - connected > 1.0
    finally:
        output.close()
        subscriber.close()


def test_sigterm_while_the_broker_is_down_counts_and_says_what_was_not_sent(tmp_path):
    excerpt = tmp_path / "excerpt.wav"
    soundfile.write(excerpt, read_clip(DEMO_RECORDING)[: 24 * SAMPLE_RATE], SAMPLE_RATE)
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "htsat_live.cli", "detect", str(excerpt)]  # in real time
        + ["--set", "publish.enabled=false", "--set", f"mqtt.url='mqtt://127.0.0.1:{port}'"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        seen = []
        while not any(line.startswith("listening to") for line in seen):
            assert time.monotonic() < deadline and process.poll() is None, seen
            seen.append(process.stderr.readline())
        time.sleep(4)  # a few levels and states wait for the broker
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    err = "".join(seen) + err
    assert process.returncode == 0, err
    assert f"mqtt: cannot reach the broker at 127.0.0.1:{port}: Connection refused (mqtt.url)" in err
    final = [line for line in out.splitlines() if line.startswith("mqtt: ")]
    counters = dict(item.split("=", 1) for item in final[0].removeprefix("mqtt: ").split())
    assert counters["state"] == "unreachable" and int(counters["unsent"]) > 0
    assert f"mqtt: {counters['unsent']} messages not sent" in err
