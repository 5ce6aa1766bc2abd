import collections
import threading

import numpy as np
import pytest
import soundfile

from htsat_live.model import SAMPLE_RATE, load_model
from htsat_live.stream.capture import Source
from htsat_live.stream.config import load_config, with_overrides
from htsat_live.stream.output import Listener
from htsat_live.stream.pipeline import Pipeline
from htsat_live.stream.replay import file_timeline


@pytest.fixture(scope="module")
def tiny_model(tiny_checkpoint):
    return load_model(tiny_checkpoint)


def make_config(**overrides):
    settings = {"publish.enabled": False, "publish.top_k": 0, "events.threshold": 0.3, "source.fast": True}
    settings.update({key.replace("__", "."): value for key, value in overrides.items()})
    return with_overrides(load_config(None), settings)


class Recorder:
    """A listener keeping every message body by topic."""

    def __init__(self):
        self.messages = collections.defaultdict(list)
        self.lock = threading.Lock()

    def __call__(self, topic: str, stream: str, body: dict) -> None:
        with self.lock:
            self.messages[topic].append(body)

    def timeline(self, num_classes: int) -> np.ndarray:
        """The stitched timeline as a subscriber rebuilds it from `scores` messages: [frames, C]."""
        end = max(body["grid_end"] for body in self.messages["scores"])
        timeline = np.full((end, num_classes), np.nan, dtype=np.float32)
        for body in self.messages["scores"]:
            if body["frames"]:
                rows = np.asarray(body["frames"], dtype=np.float32)  # [n, len(classes)]
                timeline[body["grid_start"] : body["grid_start"] + rows.shape[0], body["classes"]] = rows
        return timeline


def write_wave(path, wave: np.ndarray, rate: int = SAMPLE_RATE):
    soundfile.write(path, wave, rate, subtype="FLOAT")
    return str(path)


def noise(seconds: float, seed: int = 0, level: float = 0.1) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


def run_file(model, path, config, timeout: float = 120.0) -> tuple[Recorder, dict]:
    recorder = Recorder()
    pipeline = Pipeline(config, model, [path], outputs=[Listener(recorder)])
    pipeline.start()
    assert pipeline.wait(timeout), "the stream did not end"
    return recorder, pipeline.stop()


def test_the_published_timeline_equals_the_offline_stitching_of_the_file(tiny_model, tmp_path):
    wave = noise(23.7)
    path = write_wave(tmp_path / "noise.wav", wave)
    recorder, reports = run_file(tiny_model, path, make_config(windows__hop=2.5))
    expected = file_timeline(tiny_model, wave, 2.5)  # [frames, C]
    got = recorder.timeline(tiny_model.num_classes)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4)
    last = recorder.messages["scores"][-1]
    assert last["final_upto"] == last["grid_end"] == expected.shape[0]
    report = reports["noise.wav"]
    assert report.windows == len(recorder.messages["scores"]) - 1  # plus the closing message
    assert (report.skipped_windows, report.failed_windows, report.overruns) == (0, 0, 0)


@pytest.mark.parametrize("stagger, second_offset", [(False, 0), (True, 32000)])
def test_stagger_spreads_the_windows_of_streams_over_the_hop(tiny_model, tmp_path, stagger, second_offset):
    path = write_wave(tmp_path / "noise.wav", noise(7.0))
    ends = collections.defaultdict(list)  # stream -> end sample of each window's scores

    def record(topic, stream, body):
        if topic == "scores" and body["window_samples"]:
            ends[stream].append(body["window_start"] + body["window_samples"])

    config = make_config(windows__hop=2.0, windows__stagger=stagger)
    pipeline = Pipeline(config, tiny_model, [path, path], outputs=[Listener(record)])
    pipeline.start()
    assert pipeline.wait(120), "the streams did not end"
    reports = pipeline.stop()
    assert ends["noise.wav#0"][:3] == [64000, 128000, 192000]
    assert ends["noise.wav#1"][:3] == [64000 + second_offset, 128000 + second_offset, 192000 + second_offset]
    assert all(report.windows >= 3 and report.failed_windows == 0 for report in reports.values())


def test_every_started_event_ends_with_its_offset(tiny_model, tmp_path):
    path = write_wave(tmp_path / "noise.wav", noise(15.0, seed=3))
    recorder, reports = run_file(tiny_model, path, make_config(windows__hop=1.25, events__threshold=0.2))
    events = recorder.messages["event"]
    started = {e["id"] for e in events if e["state"] == "start"}
    ended = {e["id"] for e in events if e["state"] == "end"}
    assert started, "the low threshold should make some class fire"
    assert started == ended
    for event in events:
        if event["state"] == "end" and not event["cancelled"]:  # on final frames, or confirmed and revised away
            assert event["final"] or event["confirmed"]
            assert 0 <= event["onset"] < event["offset"] <= 15.0 + 0.01
    assert reports["noise.wav"].events == len(started)


def test_mel_columns_cover_the_stream_once_each_in_order(tiny_model, tmp_path):
    wave = noise(12.0, seed=5)
    path = write_wave(tmp_path / "noise.wav", wave)
    recorder, _ = run_file(tiny_model, path, make_config(windows__hop=10.0))
    firsts = [body["grid_start"] for body in recorder.messages["mel"]]
    counts = [len(body["frames"]) for body in recorder.messages["mel"]]
    assert firsts[0] == 0
    assert all(a + n == b for a, n, b in zip(firsts, counts, firsts[1:]))
    column = 600  # compare one column with the front end run on the whole file
    body = next(b for b in recorder.messages["mel"] if b["grid_start"] <= column < b["grid_start"] + len(b["frames"]))
    whole = tiny_model.logmel(wave[:320000])[0]  # [T, 64]
    np.testing.assert_allclose(body["frames"][column - body["grid_start"]], whole[column], atol=0.1)


def test_no_scores_or_mel_message_is_built_when_no_output_takes_them(tiny_model, tmp_path, monkeypatch):
    from htsat_live.stream import pipeline as pipeline_module

    built = collections.Counter()
    for name in ("scores_message", "mel_message"):
        real = getattr(pipeline_module, name)
        monkeypatch.setattr(
            pipeline_module, name, lambda *a, real=real, name=name, **k: built.update([name]) or real(*a, **k)
        )
    path = write_wave(tmp_path / "noise.wav", noise(12.0))
    recorder = Recorder()
    pipeline = Pipeline(make_config(), tiny_model, [path], outputs=[Listener(recorder, topics=("event", "status"))])
    pipeline.start()
    assert pipeline.wait(120.0), "the stream did not end"
    report = pipeline.stop()["noise.wav"]
    assert report.windows > 0 and recorder.messages["status"]
    assert set(recorder.messages) <= {"event", "status"} and not built
    run_file(tiny_model, path, make_config())  # a listener of every topic: both are built
    assert built["scores_message"] > 0 and built["mel_message"] > 0


def test_status_reports_level_counters_and_latency(tiny_model, tmp_path):
    wave = noise(3.0, level=0.5)
    wave[100:110] = np.nan  # counted and zeroed by the source
    path = write_wave(tmp_path / "loud.wav", wave)
    recorder, _ = run_file(tiny_model, path, make_config(windows__hop=1.0, source__fast=False))
    status = recorder.messages["status"][-1]
    assert status["counters"]["nonfinite_samples"] == 10
    assert status["counters"]["windows"] == 3
    assert status["latency"]["hop_p50"] is not None and 0 < status["latency"]["hop_p95"] < 5.0
    assert status["stream_seconds"] == pytest.approx(3.0)
    loud = [s["level_dbfs"] for s in recorder.messages["status"] if s["stream_seconds"] >= 1.0]
    assert loud and all(-9.0 < level < -3.0 for level in loud)  # RMS 0.5 = -6 dBFS


def test_silence_and_clipping_go_through(tiny_model, tmp_path):
    silent = write_wave(tmp_path / "silence.wav", np.zeros(4 * SAMPLE_RATE, np.float32))
    clipped = write_wave(tmp_path / "clipped.wav", np.clip(noise(4.0, level=5.0), -1.0, 1.0))
    quiet, quiet_reports = run_file(tiny_model, silent, make_config(windows__hop=1.25))
    loud, loud_reports = run_file(tiny_model, clipped, make_config(windows__hop=1.25))
    assert quiet.messages["status"][-1]["level_dbfs"] == -120.0
    assert loud.messages["status"][-1]["peak_dbfs"] == 0.0
    for reports in (quiet_reports, loud_reports):
        (report,) = reports.values()
        assert report.windows == 4 and report.failed_windows == 0
    assert np.isfinite(quiet.timeline(tiny_model.num_classes)).all()


class RawSource(Source):
    """A source that writes given blocks into the ring as they are, NaN included: the stand-in for a
    capture path with a bug, to show that a window the model refuses costs only that window."""

    def __init__(self, blocks: list[np.ndarray]):
        super().__init__("raw")
        self.blocks = blocks

    def _run(self) -> None:
        for block in self.blocks:
            self._write(block)
        self.stats.state = "ended"


def test_a_window_the_model_refuses_is_counted_and_the_stream_goes_on(tiny_model):
    blocks = [noise(2.5, seed=1), np.full(10, np.nan, np.float32), noise(10.0, seed=2)]
    recorder = Recorder()
    pipeline = Pipeline(make_config(windows__hop=2.5), tiny_model, [RawSource(blocks)], outputs=[Listener(recorder)])
    pipeline.start()
    assert pipeline.wait(60)
    report = pipeline.stop()["raw"]
    # the windows ending at 5, 7.5, 10 and 12.5 s hold the NaN samples (at 2.5 s); the first window
    # (ending at 2.5 s) and the closing window over the tail ([5 s, end)) do not
    assert report.failed_windows == 4
    assert report.windows == 2
    assert "NaN" in recorder.messages["status"][-1]["error"]
    assert recorder.messages["scores"][-1]["window_start"] == 5 * SAMPLE_RATE


def test_stop_ends_a_live_stream_and_its_open_events(tiny_model, tmp_path, wait_until):
    path = write_wave(tmp_path / "long.wav", noise(60.0, seed=4))
    recorder = Recorder()
    config = make_config(windows__hop=1.25, events__threshold=0.0, source__fast=False)
    pipeline = Pipeline(config, tiny_model, [path], outputs=[Listener(recorder)])
    pipeline.start()
    wait_until(lambda: any(e["state"] == "start" for e in list(recorder.messages["event"])), 30.0, "an event to start")
    report = pipeline.stop()["long.wav"]
    events = recorder.messages["event"]
    assert {e["id"] for e in events if e["state"] == "start"} == {e["id"] for e in events if e["state"] == "end"}
    assert report.samples < 30 * SAMPLE_RATE  # it stopped long before the file's end
    assert recorder.messages["status"][-1]["source_state"] == "ended"


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def test_memory_stays_flat_over_a_long_fast_forwarded_stream(tiny_model, tmp_path):
    minutes = 10
    wave = (0.1 * np.random.default_rng(0).standard_normal(minutes * 60 * 8000)).astype(np.float32)
    path = tmp_path / "long8k.wav"
    soundfile.write(path, wave, 8000, subtype="PCM_16")
    rss = {}
    recorder_count = [0]

    def sample_rss(topic, stream, body):
        if topic == "scores":
            recorder_count[0] += 1
            if recorder_count[0] in (15, 58):
                rss[recorder_count[0]] = rss_bytes()

    pipeline = Pipeline(make_config(windows__hop=10.0), tiny_model, [str(path)], outputs=[Listener(sample_rss)])
    pipeline.start()
    assert pipeline.wait(300)
    report = pipeline.stop()["long8k.wav"]
    assert report.windows == minutes * 6
    growth = rss[58] - rss[15]
    assert growth < 20 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB over {minutes * 0.7:.0f} minutes of audio"


def test_a_stalled_and_a_vanished_subscriber_cost_the_stream_nothing(tiny_model, tmp_path, wait_until):
    import zmq

    from htsat_live.stream.outputs.publish import Publisher, Subscriber

    path = write_wave(tmp_path / "noise.wav", noise(40.0, seed=6))
    address = f"ipc://{tmp_path}/pub.sock"
    config = make_config(windows__hop=1.25)  # top_k = 0: every class, so messages are large
    publisher = Publisher(address, hwm=20)
    context = zmq.Context.instance()
    stalled = context.socket(zmq.SUB)  # subscribes to everything and never reads
    stalled.setsockopt(zmq.RCVHWM, 5)
    stalled.setsockopt(zmq.SUBSCRIBE, b"")
    stalled.connect(address)
    vanished = Subscriber(address)
    healthy = Subscriber(address, topics=("scores",))

    def probed(arrived):
        """A condition that sends a probe first: ZeroMQ drops what is sent before a subscription
        reaches the publisher, so a subscriber has joined once a probe arrived."""
        return lambda: publisher.send("scores", "probe", {}) and arrived()

    wait_until(probed(lambda: stalled.poll(10)), 10.0, "the stalled socket's subscription")  # left unread
    wait_until(probed(lambda: vanished.receive(0.01) is not None), 10.0, "the vanished subscription")
    wait_until(probed(lambda: healthy.receive(0.01) is not None), 10.0, "the healthy subscription")
    while healthy.receive(0.1) is not None:  # the probes are not the stream's messages
        pass
    received = []
    stop_reading = threading.Event()

    def read():
        while not stop_reading.is_set():
            message = healthy.receive(timeout=0.1)
            if message is not None:
                received.append(message.body)

    reader = threading.Thread(target=read)
    reader.start()
    pipeline = Pipeline(config, tiny_model, [path], outputs=[publisher])
    pipeline.start()
    try:
        wait_until(lambda: received, 30.0, "the first scores message")
        vanished.close()  # a subscriber that goes away mid-stream
        assert pipeline.wait(120)
        report = pipeline.stop()["noise.wav"]
        wait_until(lambda: len(received) >= 33, 10.0, "every window's scores message to arrive")
    finally:
        stop_reading.set()
        reader.join()
        healthy.close()
        stalled.close(linger=0)
    assert report.windows == 32 and report.skipped_windows == 0
    assert len(received) == 33 and healthy.missed["scores"] == 0  # every window, plus the closing message


def test_a_threshold_set_while_the_stream_runs_reaches_its_detector_and_status(tiny_model, tmp_path):
    path = write_wave(tmp_path / "noise.wav", noise(6.0))
    recorder = Recorder()
    pipeline = Pipeline(
        make_config(windows__hop=1.0, source__fast=False), tiny_model, [path], outputs=[Listener(recorder)]
    )
    pipeline.start()
    try:
        pipeline.set_threshold("class_3", 0.95)
        with pytest.raises(ValueError, match="unknown detection target"):
            pipeline.set_threshold("no such class", 0.5)
        assert pipeline.wait(60), "the stream did not end"
    finally:
        pipeline.stop()
    thresholds = recorder.messages["status"][-1]["thresholds"]
    assert thresholds["class_3"][0] == pytest.approx(0.95)
    assert thresholds["class_2"][0] == pytest.approx(0.3)
