"""The level gate (windows.gate_dbfs) on the demo recording with stretches of digital silence and of low noise
put in: the windows below the gate are not run, counted and flagged, and the events are those of the ungated run."""

import collections
import threading
import urllib.request

import numpy as np
import pytest
import soundfile

from htsat_live.model import SAMPLE_RATE, WINDOW_SAMPLES, load_model, read_clip
from htsat_live.model.embedded import DEMO_RECORDING
from htsat_live.stream.config import ConfigError, load_config, with_overrides
from htsat_live.stream.output import Listener
from htsat_live.stream.outputs.prometheus import PrometheusMetrics
from htsat_live.stream.pipeline import Pipeline
from htsat_live.stream.windows import WindowScheduler

HOP = 1.25
GATE_DBFS = -60.0
NOISE_DBFS = -75.0  # the low noise put in: 15 dB under the gate, far under the demo's quietest second (-45 dBFS)
QUIET_SECONDS = 25.0  # each inserted stretch: long enough for whole windows inside it


@pytest.fixture(scope="module")
def embedded_model():
    return load_model(None)  # what `detect` runs without --model


@pytest.fixture(scope="module")
def demo_with_silences(tmp_path_factory):
    """The demo minute with 25 s of digital silence after its 20th second and 25 s of white noise at -75 dBFS
    after its 40th; the recording's path and the sample ranges of the two stretches."""
    demo = read_clip(DEMO_RECORDING)  # [1920000]
    rng = np.random.default_rng(7)
    quiet = int(QUIET_SECONDS * SAMPLE_RATE)
    noise = (10 ** (NOISE_DBFS / 20) * rng.standard_normal(quiet)).astype(np.float32)
    parts = [demo[: 20 * SAMPLE_RATE], np.zeros(quiet, np.float32), demo[20 * SAMPLE_RATE : 40 * SAMPLE_RATE]]
    parts += [noise, demo[40 * SAMPLE_RATE :]]
    wave = np.concatenate(parts)
    silence = (20 * SAMPLE_RATE, 20 * SAMPLE_RATE + quiet)
    low_noise = (40 * SAMPLE_RATE + quiet, 40 * SAMPLE_RATE + 2 * quiet)
    path = tmp_path_factory.mktemp("gate") / "demo-with-silences.wav"
    soundfile.write(path, wave, SAMPLE_RATE, subtype="FLOAT")
    return str(path), wave.shape[0], (silence, low_noise)


class Recorder:
    """Every scores, event and status message of one run."""

    def __init__(self):
        self.messages = collections.defaultdict(list)
        self.lock = threading.Lock()

    def __call__(self, topic: str, stream: str, body: dict) -> None:
        with self.lock:
            self.messages[topic].append(body)

    def final_events(self) -> list[tuple]:
        """The events as a file's run ends them: (target, onset frame, offset frame, peak, mean) of each end."""
        return [
            (e["label"], e["onset_frame"], e["offset_frame"], e["peak"], e["mean"])
            for e in self.messages["event"]
            if e["state"] == "end" and not e["cancelled"]
        ]


def run(model, path: str, gate: float | None, outputs=()):
    config = with_overrides(
        load_config(None),
        {"publish.enabled": False, "source.fast": True, "windows.hop": HOP, "windows.gate_dbfs": gate},
    )
    recorder = Recorder()
    pipeline = Pipeline(config, model, [path], outputs=[Listener(recorder), *outputs])
    pipeline.start()
    assert pipeline.wait(90), "the stream did not end"
    (report,) = pipeline.stop().values()
    return recorder, report


def windows_inside(stretches, length: int) -> int:
    """Windows of the schedule whose 10 s lie wholly inside one of the stretches."""
    scheduler = WindowScheduler(HOP)
    windows = scheduler.due(length)
    return sum(
        1
        for w in windows
        if w.samples == WINDOW_SAMPLES and any(start <= w.start and w.stop <= stop for start, stop in stretches)
    )


@pytest.mark.timeout(240)
def test_gated_windows_are_counted_flagged_and_the_events_are_those_of_the_ungated_run(
    embedded_model, demo_with_silences
):
    path, length, stretches = demo_with_silences
    ungated, plain = run(embedded_model, path, None)
    gated, report = run(embedded_model, path, GATE_DBFS)

    inside = windows_inside(stretches, length)
    assert inside >= 2 * 10  # each stretch holds (25 - 10) / 1.25 + 1 = 13 whole windows
    assert plain.gated_windows == 0
    # the whole windows inside the stretches are gated, and no window that holds demo audio is
    assert report.gated_windows == inside
    assert report.windows + report.gated_windows == plain.windows
    assert report.skipped_windows == report.failed_windows == 0

    flagged = [body for body in gated.messages["scores"] if body["gated"]]
    assert len(flagged) == report.gated_windows
    assert all(not any(any(row) for row in body["frames"]) for body in flagged)  # their frames score 0
    assert all(body["clipwise"] == [0.0] * len(body["clipwise"]) for body in flagged)
    assert not any(body["gated"] for body in ungated.messages["scores"])
    last_status = gated.messages["status"][-1]["counters"]
    assert last_status["gated_windows"] == report.gated_windows
    assert report.counters()["gated_windows"] == report.gated_windows

    events = ungated.final_events()
    assert len(events) >= 5  # the demo's events
    assert gated.final_events() == events


def test_the_gated_count_reaches_prometheus(embedded_model, tmp_path):
    wave = np.zeros(14 * SAMPLE_RATE, np.float32)  # digital silence: every whole window is gated
    wave[: SAMPLE_RATE // 2] = 0.1  # but a loud first half second keeps the first windows running
    path = tmp_path / "quiet.wav"
    soundfile.write(path, wave, SAMPLE_RATE, subtype="FLOAT")
    metrics = PrometheusMetrics("127.0.0.1", 0)
    scraped = []

    def scrape(topic, stream, body):  # while the pipeline runs, after its last window
        if topic == "status" and body["source_state"] == "ended":
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics.port}/metrics", timeout=5) as response:
                scraped.append(response.read().decode())

    recorder, report = run(embedded_model, str(path), GATE_DBFS, outputs=[metrics, Listener(scrape)])
    # the windows ending at 1.25 .. 10 s hold the loud part; those ending at 11.25, 12.5, 13.75 s and the
    # closing one (5 .. 14 s) start after it
    assert (report.windows, report.gated_windows) == (8, 4)
    line = f'htsat_live_gated_windows_total{{stream="quiet.wav"}} {float(report.gated_windows)}'
    assert scraped and line in scraped[-1].splitlines()


@pytest.mark.parametrize(
    "value, message",
    [
        (1.0, "windows.gate_dbfs: must be <= 0, got 1"),
        (-120.0, "windows.gate_dbfs: must be > -120, got -120"),
        (float("nan"), "windows.gate_dbfs: must be a finite number, got nan"),
        (float("-inf"), "windows.gate_dbfs: must be a finite number, got -inf"),
        ("-60", "windows.gate_dbfs: must be a number, got '-60'"),
    ],
)
def test_a_bad_gate_level_is_refused_with_its_key(value, message):
    with pytest.raises(ConfigError) as refused:
        with_overrides(load_config(None), {"windows.gate_dbfs": value})
    assert str(refused.value) == message


def test_the_gate_is_off_unless_set():
    assert load_config(None).windows.gate_dbfs is None
