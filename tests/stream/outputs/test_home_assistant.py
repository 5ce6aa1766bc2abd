"""A real Home Assistant Core (2024.3.3, in its own virtual environment, cache/home-assistant, made by
scripts/setup-home-assistant.sh the first time the tests need it) with its MQTT integration set up as a
config entry, against a real mosquitto and real detector processes: the discovered entities appear with
their states and no warning in its log, the documented automation (`from: "off"`) fires once for one event,
a detector killed with SIGKILL and started again turns its entity `unavailable -> off`, never
`unavailable -> on` without a new event, while another detector's entities stay available; a real-time
`detect` of the demo recording is followed state by state, goes unavailable when it stops, and takes a
threshold set from Home Assistant, echoes it and keeps it across a restart.

Run with `-s`, each test prints its figures: the transitions Home Assistant recorded, the automation runs
without a new event (false triggers), the confirmed events cancelled and the confirmed start latency."""

import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from htsat_live.model import DEMO_RECORDING
from htsat_live.stream.events import Event

ROOT = Path(__file__).parents[3]
HASS = Path(os.environ.get("HTSAT_LIVE_HOME_ASSISTANT", ROOT / "cache" / "home-assistant"), "bin", "hass")
DOG = "binary_sensor.htsat_live_kitchen_dog"  # the entity ids Home Assistant derives from device and entity names
NUMBER = "number.htsat_live_kitchen_dog_threshold"
SOUND = "event.htsat_live_kitchen_sound"
CAT = "binary_sensor.htsat_live_kitchen_cat"  # a target with no event
GARAGE_DOG = "binary_sensor.htsat_live_garage_dog"
DEMO = "htsat_live_demo_wav"  # the demo stream's device, as part of its entity ids
DEMO_THRESHOLD = f"number.{DEMO}_water_threshold"

# Home Assistant starts in 20-60 s on two cores; the first test installs it into cache/ when it is missing
pytestmark = pytest.mark.timeout(1200)
INSTALL_SECONDS = 900

AUTOMATIONS = """
- id: transitions
  alias: Every state change of the detector's entities, to MQTT
  mode: queued
  max: 1000
  trigger:
    - platform: event
      event_type: state_changed
  condition:
    - condition: template
      value_template: "{{ 'htsat_live' in trigger.event.data.entity_id }}"
  action:
    - service: mqtt.publish
      data:
        topic: test/transitions
        qos: 1
        payload: >-
          {{ trigger.event.data.entity_id }}
          {{ trigger.event.data.old_state.state if trigger.event.data.old_state else 'none' }}
          {{ trigger.event.data.new_state.state if trigger.event.data.new_state else 'none' }}
- id: documented
  alias: Dog heard (the trigger of docs/home-assistant.md)
  trigger:
    - platform: state
      entity_id: binary_sensor.htsat_live_kitchen_dog
      from: "off"
      to: "on"
  action:
    - service: mqtt.publish
      data:
        topic: test/documented
        qos: 1
        payload: "{{ trigger.from_state.state }} -> {{ trigger.to_state.state }}"
- id: set_threshold
  alias: A threshold set from Home Assistant (the number entity's own service), on a message of the test
  trigger:
    - platform: mqtt
      topic: test/set_threshold
  action:
    - service: number.set_value
      target:
        entity_id: number.htsat_live_demo_wav_water_threshold
      data:
        value: "{{ trigger.payload }}"
"""

DETECTOR = """
import json, sys
from htsat_live.stream.config import MqttConfig
from htsat_live.model import DEMO_RECORDING
from htsat_live.stream.events import Event
from htsat_live.stream.messages import EventMessage, Message
from htsat_live.stream.outputs.mqtt import MqttOutput
url, stream, client_id = sys.argv[1:]
output = MqttOutput(MqttConfig(url=url, client_id=client_id))
output.attach(stream, None, ["Dog", "Cat"])
output.handle(Message("status", stream, {"thresholds": {"Dog": [0.5, 0.25], "Cat": [0.5, 0.25]},
    "loudness": None, "stream_seconds": 1.0, "level_dbfs": -30.0}))
print(output.availability, flush=True)
for line in sys.stdin:  # an event (JSON) to hand the output
    output.handle(EventMessage(stream, Event(**json.loads(line))))
"""


def dog_start() -> Event:
    return Event(
        id=1,
        state="start",
        label="Dog",
        classes=(0,),
        onset_frame=0,
        offset_frame=1,
        onset=0.0,
        offset=0.01,
        onset_wall=time.time(),
        offset_wall=time.time(),
        peak=0.9,
        mean=0.9,
        threshold=0.5,
        final=False,
        cancelled=False,
        latency=1.0,
        confirmed=True,
        confirm_latency=1.0,
    )


class Recorder:
    """A paho client keeping what Home Assistant publishes: its birth message and the automations' topics. Its
    session persists (fixed id, QoS 1), so the broker keeps what comes while it reconnects after a restart."""

    def __init__(self, port: int):
        self.messages: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-recorder", clean_session=False)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda client, *_: client.subscribe([("homeassistant/status", 1), ("test/#", 1)])
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._keep
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise AssertionError("the recorder did not subscribe")

    def _keep(self, client, userdata, message) -> None:
        with self.lock:
            self.messages.append((message.topic, message.payload.decode()))

    def payloads(self, topic: str) -> list[str]:
        with self.lock:
            return [payload for t, payload in self.messages if t == topic]

    def transitions(self, entity: str) -> list[tuple[str, str]]:
        """(from, to) of each state change of `entity`, in order (attribute-only changes left out)."""
        changes = [payload.split() for payload in self.payloads("test/transitions")]
        return [(old, new) for name, old, new in changes if name == entity and old != new]

    def state(self, entity: str) -> str | None:
        """The newest state of `entity` Home Assistant reported, or None before any."""
        changes = self.transitions(entity)
        return changes[-1][1] if changes else None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class HomeAssistant:
    """Home Assistant Core with a config of its own in `directory`: the MQTT integration as a config entry
    (discovery on) for the broker on `port`, and AUTOMATIONS. `start()` waits for its MQTT birth message."""

    def __init__(self, directory: Path, port: int, recorder: Recorder):
        self.directory, self.recorder = directory, recorder
        self.process: subprocess.Popen | None = None
        config = directory / "config"
        (config / ".storage").mkdir(parents=True)
        (config / "configuration.yaml").write_text(
            "homeassistant:\n  name: Test\n  latitude: 52.0\n  longitude: 4.0\n  elevation: 0\n"
            "  unit_system: metric\n  time_zone: UTC\n  country: NL\n"
            "automation: !include automations.yaml\nlogger:\n  default: warning\n"
        )
        (config / "automations.yaml").write_text(AUTOMATIONS)
        entry = {
            "entry_id": "mqtt",
            "version": 1,
            "minor_version": 1,
            "domain": "mqtt",
            "title": "mosquitto",
            "data": {"broker": "127.0.0.1", "port": port, "discovery": True},
            "options": {},
            "pref_disable_new_entities": False,
            "pref_disable_polling": False,
            "source": "user",
            "unique_id": None,
            "disabled_by": None,
        }
        (config / ".storage" / "core.config_entries").write_text(
            json.dumps({"version": 1, "minor_version": 1, "key": "core.config_entries", "data": {"entries": [entry]}})
        )
        self.config = config

    def start(self) -> None:
        births = self.recorder.payloads("homeassistant/status").count("online")
        log = self.directory / "home-assistant.log"
        with open(log, "ab") as output:
            self.process = subprocess.Popen(
                [str(HASS), "--config", str(self.config), "--skip-pip", "--log-no-color"], stdout=output, stderr=output
            )
        self.wait_for_birth(births, 150)

    def wait_for_birth(self, births: int, timeout: float) -> None:
        """Until Home Assistant says `online` (its MQTT birth message) for the (births + 1)th time."""
        deadline = time.monotonic() + timeout
        while self.recorder.payloads("homeassistant/status").count("online") <= births:
            if self.process.poll() is not None or time.monotonic() > deadline:
                text = (self.directory / "home-assistant.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"Home Assistant did not connect to the broker: {text}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None


@pytest.fixture(scope="session")
def home_assistant_core() -> Path:
    """Home Assistant Core's `hass`, installed into cache/home-assistant (or $HTSAT_LIVE_HOME_ASSISTANT) the first
    time (kept between runs)."""
    installed = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup-home-assistant.sh")],
        capture_output=True,
        text=True,
        timeout=INSTALL_SECONDS,
    )
    if installed.returncode != 0 or not HASS.exists():
        pytest.fail(f"Home Assistant Core could not be installed: {installed.stdout[-2000:]}{installed.stderr[-2000:]}")
    return HASS


@pytest.fixture
def home_assistant(tmp_path, mosquitto, home_assistant_core):
    """(a broker, Home Assistant connected to it, a recorder of what Home Assistant publishes)."""
    broker = mosquitto()
    recorder = Recorder(broker.port)
    hass = HomeAssistant(tmp_path, broker.port, recorder)
    try:
        hass.start()
        yield broker, hass, recorder
    finally:
        hass.stop()
        recorder.close()


def start_detector(broker, stream: str = "kitchen", client_id: str = "htsat-kitchen") -> subprocess.Popen:
    """A detector process whose stream has the target Dog; an event written to its stdin is handled."""
    process = subprocess.Popen(
        [sys.executable, "-c", DETECTOR, broker.url, stream, client_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    ready, _, _ = select.select([process.stdout], [], [], 60)  # its availability topic: it is connecting
    assert ready and process.stdout.readline(), "the detector process did not start"
    return process


def test_home_assistant_shows_the_entities_and_a_killed_detector_comes_back_off_not_on(home_assistant, wait_until):
    broker, _, recorder = home_assistant
    processes = [start_detector(broker), start_detector(broker, "garage", "htsat-garage")]
    try:
        wait_until(lambda: recorder.transitions(DOG)[-1:] == [("unknown", "off")], 60, "the Dog sensor, off")
        wait_until(lambda: recorder.state(GARAGE_DOG) == "off", 60, "the garage's Dog sensor, off")
        wait_until(lambda: recorder.transitions(NUMBER)[-1:] == [("unknown", "0.5")], 30, "the threshold")
        assert recorder.transitions(SOUND) == [("none", "unavailable"), ("unavailable", "unknown")]
        processes[0].stdin.write(json.dumps(asdict(dog_start())) + "\n")
        processes[0].stdin.flush()
        wait_until(lambda: recorder.transitions(DOG)[-1:] == [("off", "on")], 30, "the Dog sensor turning on")
        wait_until(lambda: recorder.payloads("test/documented") == ["off -> on"], 30, "the documented automation")
        wait_until(lambda: len(recorder.transitions(SOUND)) == 3, 30, "the event entity")  # its state: the time
        garage = len(recorder.transitions(GARAGE_DOG))
        processes[0].send_signal(signal.SIGKILL)
        processes[0].wait(10)
        wait_until(lambda: recorder.transitions(DOG)[-1:] == [("on", "unavailable")], 60, "the last will")
        killed = len(recorder.transitions(DOG))
        processes[0] = start_detector(broker)  # started again; no new event
        wait_until(lambda: recorder.transitions(DOG)[-1][1] == "off", 60, "the Dog sensor, off again")
        time.sleep(1)
    finally:
        for process in processes:
            process.kill()
            process.wait(10)
    print(f"\nDog across a detector killed and started again: {recorder.transitions(DOG)}")
    print(f"automation runs without a new event (false triggers): {len(recorder.payloads('test/documented')) - 1}")
    assert recorder.transitions(DOG)[killed:] == [("unavailable", "off")]  # not unavailable -> on -> off
    assert recorder.payloads("test/documented") == ["off -> on"]  # one event, one automation run
    assert recorder.transitions(GARAGE_DOG)[garage:] == []  # the other detector's entity stayed off throughout
    assert recorder.state(GARAGE_DOG) == "off"
    assert_no_warning(hass_log(home_assistant))


def test_a_broker_restart_and_a_home_assistant_restart_during_an_event_run_no_automation_again(
    home_assistant, wait_until
):
    broker, hass, recorder = home_assistant
    detector = start_detector(broker)
    try:
        wait_until(lambda: recorder.transitions(DOG)[-1:] == [("unknown", "off")], 60, "the Dog sensor, off")
        detector.stdin.write(json.dumps(asdict(dog_start())) + "\n")  # an event that is still on at the restarts
        detector.stdin.flush()
        wait_until(lambda: recorder.payloads("test/documented") == ["off -> on"], 30, "the documented automation")
        births = recorder.payloads("homeassistant/status").count("online")
        before = len(recorder.transitions(DOG))
        broker.stop()
        broker.start()
        hass.wait_for_birth(births, 60)
        time.sleep(3)  # the detector reconnects after 1 s and sends its states again
        after_broker = recorder.transitions(DOG)[before:]
        hass.stop()
        before = len(recorder.transitions(DOG))
        hass.start()
        wait_until(lambda: recorder.transitions(DOG)[before:][-1:] == [("unknown", "on")], 60, "the state again")
        wait_until(lambda: recorder.state(CAT) == "off", 60, "the Cat sensor again")
        time.sleep(1)
    finally:
        detector.kill()
        detector.wait(10)
    after_home_assistant = recorder.transitions(DOG)[before:]
    print(f"\nDog across a broker restart: {after_broker}; across a Home Assistant restart: {after_home_assistant}")
    print(f"Cat (no event) throughout: {recorder.transitions(CAT)}")
    assert "on" not in [new for _, new in recorder.transitions(CAT)]  # off stays off: no stale state shown as new
    print(f"automation runs without a new event (false triggers): {len(recorder.payloads('test/documented')) - 1}")
    # The event is still on: Home Assistant shows it unavailable while its link is down, then on; never off between
    assert after_broker[-1][1] == "on" and "off" not in [new for _, new in after_broker], after_broker
    assert recorder.payloads("test/documented") == ["off -> on"]  # neither restart ran the automation again


def hass_log(home_assistant) -> str:
    return (home_assistant[1].directory / "home-assistant.log").read_text(errors="replace")


def assert_no_warning(log: str) -> None:
    """Home Assistant's log says nothing (warning or worse) about MQTT or the detector's entities."""
    said = [line for line in log.splitlines() if re.search(r"\b(WARNING|ERROR|CRITICAL)\b", line)]
    assert not [line for line in said if "mqtt" in line.lower() or "htsat" in line.lower()], said


def detect(broker, *settings: str) -> subprocess.Popen:
    """`htsat-live detect` of the demo recording in real time, publishing to `broker`."""
    return subprocess.Popen(
        [sys.executable, "-m", "htsat_live.cli", "detect", str(DEMO_RECORDING)]
        + ["--set", "publish.enabled=false", "--set", f"mqtt.url='{broker.url}'"]
        + [item for setting in settings for item in ("--set", setting)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def test_a_demo_run_seen_by_home_assistant(home_assistant, tmp_path, wait_until):
    broker, _, recorder = home_assistant
    jsonl = tmp_path / "events.jsonl"
    run = detect(broker, f"sinks.jsonl='{jsonl}'")
    try:
        out, err = run.communicate(timeout=300)
    finally:
        run.kill()
    assert run.returncode == 0, err
    labels = sorted({json.loads(line)["label"] for line in jsonl.read_text().splitlines()} | {"Water"})
    sensors = {label: f"binary_sensor.{DEMO}_{label.lower()}" for label in labels}
    for entity in sensors.values():  # a clean stop: `offline`
        wait_until(lambda entity=entity: recorder.state(entity) == "unavailable", 60, f"{entity} unavailable")
    reports = [json.loads(line) for line in jsonl.read_text().splitlines()]
    confirmed = [r for r in reports if r["state"] == "end" and r["confirmed"] and not r["cancelled"]]
    withdrawn = [r for r in reports if r["state"] == "end" and r["confirmed"] and r["cancelled"]]
    [latency] = re.findall(r"confirmed p50=([0-9.]+) s", out)
    false_triggers = 0
    print(
        f"\n{len(confirmed)} confirmed events, {len(withdrawn)} confirmed then cancelled, "
        f"confirmed start latency p50 {latency} s"
    )
    for label, entity in sensors.items():
        changes = recorder.transitions(entity)
        ons = [old for old, new in changes if new == "on"]
        events = sum(r["label"] == label for r in confirmed)
        false_triggers += len(ons) - events
        print(f"{entity}: {events} events; {changes}")
        assert ons == ["off"] * events, changes  # one off -> on per confirmed event, never unavailable/unknown -> on
        assert changes[-1] == ("off", "unavailable")
    print(f"automation runs without a new event (false triggers): {false_triggers}")
    assert withdrawn == [] and len(confirmed) >= 10
    assert_no_warning(hass_log(home_assistant))


def said(lines, text: str, timeout: float) -> str:
    """The first line of a LineReader that holds `text`, read within `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        line = lines.next_line(max(0.1, deadline - time.monotonic()), repr(text))
        if text in line:
            return line


def test_a_threshold_set_from_home_assistant_is_applied_echoed_and_kept_across_a_restart(
    home_assistant, tmp_path, monkeypatch, wait_until, read_lines
):
    broker, _, recorder = home_assistant
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # where the detector keeps the change
    run = detect(broker)
    try:
        errors = read_lines(run.stderr)
        wait_until(
            lambda: recorder.state(DEMO_THRESHOLD) not in (None, "unknown", "unavailable"), 60, "the threshold entity"
        )
        configured = recorder.state(DEMO_THRESHOLD)
        recorder.client.publish("test/set_threshold", "0.42", qos=1)  # the automation calls number.set_value
        line = said(errors, "Water threshold set to 0.42 over MQTT", 60)  # applied, and said
        wait_until(lambda: recorder.state(DEMO_THRESHOLD) == "0.42", 30, "the echo")
        run.send_signal(signal.SIGTERM)
        assert run.wait(60) == 0
    finally:
        run.kill()
    wait_until(lambda: recorder.state(DEMO_THRESHOLD) == "unavailable", 30, "the number unavailable")
    stopped = len(recorder.transitions(DEMO_THRESHOLD))
    again = detect(broker, "source.fast=true")
    try:
        kept = said(read_lines(again.stderr), "Water threshold 0.42 (set over MQTT before", 120)
        assert again.wait(300) == 0
    finally:
        again.kill()
    wait_until(lambda: recorder.state(DEMO_THRESHOLD) == "unavailable", 30, "the number unavailable again")
    print(f"\n{line.strip()}\n{kept.strip()}\n{DEMO_THRESHOLD}: {recorder.transitions(DEMO_THRESHOLD)}")
    assert configured != "0.42"
    assert recorder.transitions(DEMO_THRESHOLD)[stopped:] == [("unavailable", "0.42"), ("0.42", "unavailable")]
    assert (tmp_path / "state" / "htsat-live" / "mqtt-thresholds.json").exists()
