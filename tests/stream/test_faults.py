"""The fault matrix (docs/reliability.md), with real parts: every fault ends in a clear line or a counted,
reported recovery, and no event is lost from the detector's own records.

"Complete sinks" means: every JSONL start has an end, and the TSV holds exactly the JSONL ends that were
not cancelled. Waits have generous deadlines; no test asserts a time.
"""

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from htsat_live.model import SAMPLE_RATE
from htsat_live.model.checkpoint import build_model, read_checkpoint
from htsat_live.model.predictor import TorchBackend, predictor_from_checkpoint
from htsat_live.stream.config import load_config, with_overrides
from htsat_live.stream.output import Listener
from htsat_live.stream.outputs.publish import Subscriber
from htsat_live.stream.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def noise_file(path: Path, seconds: float, seed: int = 1) -> Path:
    wave = (0.2 * np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)
    soundfile.write(path, wave, SAMPLE_RATE)
    return path


def sink_config(tmp_path: Path, bind: str) -> Path:
    config = tmp_path / "faults.toml"
    config.write_text(
        f'[publish]\nbind = "{bind}"\n[events]\nthreshold = 0.05\n'
        f'[sinks]\njsonl = "{tmp_path}/events.jsonl"\ntsv = "{tmp_path}/events.tsv"\n'
        f'clips_dir = "{tmp_path}/clips"\n'
    )
    return config


def assert_sinks_complete(tmp_path: Path) -> list[dict]:
    """Every JSONL start has an end; the TSV rows are the JSONL ends not cancelled. Returns the ends."""
    jsonl = tmp_path / "events.jsonl"
    reports = [json.loads(line) for line in jsonl.read_text().splitlines()] if jsonl.exists() else []
    started = {r["id"] for r in reports if r["state"] == "start"}
    ends = [r for r in reports if r["state"] == "end"]
    assert started == {r["id"] for r in ends}, "a started event has no end"
    real = [r for r in ends if not r["cancelled"]]
    tsv = tmp_path / "events.tsv"
    if tsv.exists():
        rows = tsv.read_text().splitlines()[1:]
        assert sorted(rows) == sorted(
            f"{r['stream']}\t{float(r['onset'])!r}\t{float(r['offset'])!r}\t{r['label']}" for r in real
        )
    return real


def start_detect(
    tmp_path: Path, start_tiny_detect, bind: str | None = None, seconds: float = 40.0, extra: list[str] = ()
) -> subprocess.Popen:
    recording = noise_file(tmp_path / "long.wav", seconds)
    config = sink_config(tmp_path, bind or f"ipc://{tmp_path}/x.sock")
    return start_tiny_detect(str(recording), "--config", str(config), *extra)


def wait_for_event_start(detect: subprocess.Popen) -> None:
    for line in detect.stdout:  # events are printed live as they start; the loop ends with the process
        if " start " in line:
            return
    raise AssertionError("detect ended before any event started")


def finish(detect: subprocess.Popen, interrupt: bool = True) -> tuple[str, str]:
    """Its output once it ended; with `interrupt` (a test that did not stop it, or failed before it did)
    it is stopped here with Ctrl-C, and killed if it does not end."""
    try:
        if interrupt and detect.poll() is None:
            detect.send_signal(signal.SIGINT)
        out, err = detect.communicate(timeout=120)
    finally:
        if detect.poll() is None:
            detect.kill()
    return out, err


# --- signals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signals",
    [
        [signal.SIGTERM],
        [signal.SIGINT, signal.SIGINT],
        [signal.SIGTERM, signal.SIGINT],
        [signal.SIGINT, signal.SIGTERM, signal.SIGINT],
    ],
    ids=["sigterm", "sigint-twice", "sigterm-then-sigint", "three-during-shutdown"],
)
def test_signals_mid_stream_and_during_shutdown_leave_every_sink_complete(tmp_path, start_tiny_detect, signals):
    detect = start_detect(tmp_path, start_tiny_detect)
    signalled = False
    try:
        wait_for_event_start(detect)
        for number in signals:  # the later ones land while the first shutdown is flushing
            detect.send_signal(number)
            signalled = True
            time.sleep(0.05)
    finally:
        out, err = finish(detect, interrupt=not signalled)
    assert detect.returncode == 0, err
    assert "Traceback" not in err
    assert "samples=" in out and "shutdown took" in out  # the counters were printed
    assert assert_sinks_complete(tmp_path)
    if len(signals) > 1:
        assert "already stopping" in err


@pytest.mark.parametrize("delay", [0.0, 0.5, 2.0], ids=["at-once", "importing", "loading"])
def test_a_signal_during_start_up_is_a_clean_exit(tmp_path, start_tiny_detect, delay):
    detect = start_detect(tmp_path, start_tiny_detect)
    try:
        time.sleep(delay)
        detect.send_signal(signal.SIGINT)
    finally:
        out, err = finish(detect, interrupt=False)
    # 130 from the shell's view: our exit code, or killed by SIGINT before Python installed its handler (-2)
    assert detect.returncode in (0, 130, -signal.SIGINT), err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert_sinks_complete(tmp_path)


# --- one window's inference fails -----------------------------------------------------------------


class FailingBackend:
    """A fake backend (fails on purpose): the real torch backend, except that it raises for any batch
    that holds the window starting with the sentinel sample."""

    name = "torch"

    def __init__(self, backend: TorchBackend, sentinel: float):
        self.backend = backend
        self.device = backend.device
        self.sentinel = np.float32(sentinel)
        self.failures = 0

    def run(self, wave: np.ndarray, tile_short: bool):
        if np.any(wave[:, 0] == self.sentinel):
            self.failures += 1
            raise RuntimeError("injected inference failure")
        return self.backend.run(wave, tile_short)


def test_one_failing_window_is_counted_and_the_stream_goes_on(tmp_path, tiny_checkpoint):
    checkpoint = read_checkpoint(tiny_checkpoint)
    backend = FailingBackend(TorchBackend(build_model(checkpoint, tiny_checkpoint), "cpu"), 0.777)
    model = predictor_from_checkpoint(checkpoint, backend, "failing")
    wave = (0.2 * np.random.default_rng(2).standard_normal(30 * SAMPLE_RATE)).astype(np.float32)
    wave[160000] = 0.777  # the first sample of window 5 at hop 2.5 s (it starts at 5 s)
    soundfile.write(tmp_path / "marked.wav", wave, SAMPLE_RATE, subtype="FLOAT")
    config = with_overrides(load_config(None), {"windows.hop": 2.5, "source.fast": True, "events.threshold": 0.05})
    statuses = []
    keep_statuses = Listener(lambda topic, stream, body: statuses.append(body) if topic == "status" else None)
    pipeline = Pipeline(config, model, inputs=[str(tmp_path / "marked.wav")], outputs=[keep_statuses])
    pipeline.start()
    assert pipeline.wait(timeout=300)
    report = next(iter(pipeline.stop().values()))
    assert backend.failures >= 1
    assert report.failed_windows == 1 and report.skipped_windows == 0
    assert report.windows == 12 - 1  # hop 2.5 s over 30 s: 12 windows, one lost
    assert statuses[-1]["counters"]["failed_windows"] == 1 and "injected inference failure" in statuses[-1]["error"]


# --- subscribers ----------------------------------------------------------------------------------


def test_a_killed_subscriber_and_garbage_on_the_port_do_not_stop_the_detector(tmp_path, start_tiny_detect, read_lines):
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    detect = start_detect(tmp_path, start_tiny_detect, bind=address, seconds=60.0)
    try:
        listen = subprocess.Popen(
            [sys.executable, "-m", "htsat_live.cli", "listen", address, "--topic", "status"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        heard = read_lines(listen.stdout).next_line(60, "listen's first status line")
        assert heard.startswith("status "), heard  # it hears the detector
        listen.kill()  # a subscriber that dies without a goodbye
        listen.wait(timeout=30)
        for seed in range(5):  # not ZeroMQ at all: random bytes, then a hang-up
            with socket.create_connection(("127.0.0.1", port), timeout=10) as garbage:
                garbage.sendall(np.random.default_rng(seed).bytes(4096))
        again = Subscriber(address, topics=("status",))
        try:
            first = again.receive(timeout=60)
            second = again.receive(timeout=60)
        finally:
            again.close()
        assert first is not None and second is not None, "no status after the faults"
        assert second.body["stream_seconds"] > first.body["stream_seconds"]  # the stream is still going
        assert detect.poll() is None
    finally:
        out, err = finish(detect)  # Ctrl-C
    assert detect.returncode == 0, err
    assert "Traceback" not in err
    assert_sinks_complete(tmp_path)


def test_a_subscriber_holds_a_bounded_queue(tmp_path):
    import zmq

    subscriber = Subscriber(f"ipc://{tmp_path}/x.sock")
    try:
        assert 0 < subscriber._socket.getsockopt(zmq.RCVHWM) <= 10_000
    finally:
        subscriber.close()


# --- the microphone goes away and comes back ----------------------------------------------------------


def test_a_microphone_removed_and_recreated_mid_stream_is_counted_and_events_follow(
    virtual_mic, tmp_path, start_tiny_detect
):
    rate = 44100
    t = np.arange(int(6 * rate)) / rate
    burst = 0.4 * np.sin(2 * np.pi * 660 * t) + 0.05 * np.random.default_rng(3).standard_normal(t.size)
    soundfile.write(tmp_path / "burst.wav", burst.astype(np.float32), rate)
    address = f"ipc://{tmp_path}/htsat.sock"
    config = tmp_path / "mic.toml"
    config.write_text(
        f'[publish]\nbind = "{address}"\n[events]\nthreshold = 0.05\n'
        f'[sinks]\njsonl = "{tmp_path}/events.jsonl"\ntsv = "{tmp_path}/events.tsv"\n'
    )
    subscriber = Subscriber(address, topics=("status", "event"))
    detect = start_tiny_detect("mic", "--hop", "1.25", "--config", str(config), env=virtual_mic.env)
    seen = []

    def wait_for(condition, seconds: float) -> dict:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            message = subscriber.receive(timeout=0.5)
            if message is not None:
                seen.append(message)
                if condition(message):
                    return message.body
        raise AssertionError(f"not within {seconds} s; last: {[m.body.get('source_state') for m in seen[-3:]]}")

    try:
        wait_for(lambda m: m.topic == "status" and m.body["stream_seconds"] > 1.0, 60)
        virtual_mic.unload_sink()  # the input device disappears under the running capture
        wait_for(lambda m: m.topic == "status" and m.body["source_state"] == "reconnecting", 60)
        virtual_mic.load_sink()
        back = wait_for(
            lambda m: (
                m.topic == "status" and m.body["counters"]["reconnects"] >= 1 and m.body["source_state"] == "running"
            ),
            90,
        )
        resumed_at = back["stream_seconds"]
        player = virtual_mic.play(tmp_path / "burst.wav")
        try:
            after = wait_for(
                lambda m: m.topic == "event" and m.body["state"] == "start" and m.body["onset"] >= resumed_at - 1.0, 90
            )
        finally:
            player.kill()
        gap = wait_for(lambda m: m.topic == "status", 30)["counters"]["gap_seconds"]
    finally:
        out, err = finish(detect)
        subscriber.close()
    assert detect.returncode == 0, err
    assert after["onset"] >= resumed_at - 1.0
    assert gap > 0.0
    assert_sinks_complete(tmp_path)
