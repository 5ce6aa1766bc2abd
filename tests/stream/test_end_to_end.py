"""End to end through real parts: PulseAudio null sink -> sounddevice/PortAudio capture of its monitor ->
`htsat-live detect` (a subprocess) -> ZeroMQ PUB -> a real SUB socket here."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile

from htsat_live.stream.outputs.publish import Subscriber

REPO = Path(__file__).resolve().parents[2]


def test_sound_played_into_the_virtual_microphone_reaches_a_zeromq_subscriber(virtual_mic, tmp_path, start_tiny_detect):
    rate = 44100  # any rate: the player and the capture both convert
    t = np.arange(int(14 * rate)) / rate
    sound = 0.4 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) / 2
    sound += 0.05 * np.random.default_rng(0).standard_normal(t.size)
    soundfile.write(tmp_path / "played.wav", np.stack([sound, sound], axis=1).astype(np.float32), rate)
    address = f"ipc://{tmp_path}/htsat.sock"
    config = tmp_path / "live.toml"
    # The tiny model has random weights: with an on-threshold this low some class surely fires.
    config.write_text(f'[publish]\nbind = "{address}"\ntop_k = 3\n[events]\nthreshold = 0.05\n')

    subscriber = Subscriber(address)
    detect = start_tiny_detect("mic", "--config", str(config), "--hop", "1.25", env=virtual_mic.env)
    player = None
    seen = {"status": [], "scores": [], "event": [], "mel": []}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            message = subscriber.receive(timeout=0.5)
            if message is None:
                assert detect.poll() is None, f"detect exited early: {detect.communicate()}"
                continue
            seen[message.topic].append(message.body)
            if player is None and message.topic == "status":
                player = virtual_mic.play(tmp_path / "played.wav")  # the pipeline runs: play now
            loud = [s for s in seen["status"] if s["level_dbfs"] > -40.0]
            if loud and seen["scores"] and any(e["state"] == "start" for e in seen["event"]):
                break
        detect.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
        out, err = detect.communicate(timeout=60)
    finally:
        if detect.poll() is None:
            detect.kill()
        if player is not None:
            player.kill()
        subscriber.close()
    assert detect.returncode == 0, err
    assert [s for s in seen["status"] if s["level_dbfs"] > -40.0], "the subscriber never saw the played sound"
    assert seen["scores"] and seen["mel"]
    started = [e for e in seen["event"] if e["state"] == "start"]
    assert started
    assert "start" in out and started[0]["label"] in out  # events printed live
    assert "overruns=0" in out and "input_overflows=0" in out
    assert all(s["counters"]["overruns"] == 0 for s in seen["status"])
    assert seen["status"][-1]["source"] == "mic"
    body = seen["scores"][-1]
    assert body["schema"] == 1 and len(body["classes"]) == 3 and body["hop"] == 1.25


def test_a_microphone_that_disappears_is_reported_on_status_and_reopened(virtual_mic, tmp_path, start_tiny_detect):
    address = f"ipc://{tmp_path}/htsat.sock"
    subscriber = Subscriber(address, topics=("status",))
    detect = start_tiny_detect("mic", "--hop", "2.5", "--set", f'publish.bind="{address}"', env=virtual_mic.env)
    states = []

    def wait_for_status(condition, seconds: float):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            message = subscriber.receive(timeout=0.5)
            if message is not None:
                states.append((message.body["source_state"], message.body["error"], message.body["counters"]))
                if condition(message.body):
                    return message.body
        raise AssertionError(f"no such status within {seconds} s; saw {states[-3:]}")

    try:
        wait_for_status(lambda s: s["stream_seconds"] > 0.5, 60)
        virtual_mic.kill()  # the sound server goes away under the running capture
        lost = wait_for_status(lambda s: s["source_state"] == "reconnecting", 30)
        assert "default" in lost["error"]
        virtual_mic.start()
        back = wait_for_status(lambda s: s["source_state"] == "running" and s["counters"]["reconnects"] >= 1, 60)
        before = back["stream_seconds"]
        wait_for_status(lambda s: s["stream_seconds"] > before + 1.0, 30)  # audio flows again
        detect.send_signal(signal.SIGINT)
        detect.communicate(timeout=60)
    finally:
        if detect.poll() is None:
            detect.kill()
        subscriber.close()
    assert detect.returncode == 0


def test_ctrl_c_ends_open_events_and_flushes_every_sink(tmp_path, start_tiny_detect):
    rate = 32000
    wave = (0.2 * np.random.default_rng(1).standard_normal(40 * rate)).astype(np.float32)
    soundfile.write(tmp_path / "long.wav", wave, rate)
    config = tmp_path / "sinks.toml"
    config.write_text(
        f'[publish]\nbind = "ipc://{tmp_path}/x.sock"\n[events]\nthreshold = 0.05\n'
        f'[sinks]\njsonl = "{tmp_path}/events.jsonl"\ntsv = "{tmp_path}/events.tsv"\n'
        f'audacity = "{tmp_path}/labels.txt"\nclips_dir = "{tmp_path}/clips"\npre_roll = 0.5\n'
        f"post_roll = 0.5\n"
    )
    detect = start_tiny_detect(str(tmp_path / "long.wav"), "--config", str(config))
    try:
        for line in detect.stdout:  # events are printed live, as they start
            if " start " in line:
                break
        detect.send_signal(signal.SIGINT)
        out, err = detect.communicate(timeout=60)
    finally:
        if detect.poll() is None:
            detect.kill()
    assert detect.returncode == 0, err
    reports = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    started = {r["id"] for r in reports if r["state"] == "start"}
    ended = [r for r in reports if r["state"] == "end"]
    assert started and started == {r["id"] for r in ended}  # every open event got its end
    real = [r for r in ended if not r["cancelled"]]
    assert real
    rows = (tmp_path / "events.tsv").read_text().splitlines()
    assert rows[0] == "filename\tonset\toffset\tevent_label" and len(rows) == 1 + len(real)
    assert len((tmp_path / "labels.txt").read_text().splitlines()) == len(real)
    clips = sorted((tmp_path / "clips").glob("*.wav"))
    assert len(clips) == len(real)
    assert all(r["offset"] < 30.0 for r in real)  # it stopped well before the file's end
    assert "samples=" in out


def detect_without_a_microphone(tmp_path, tiny_checkpoint, *arguments: str, timeout: float):
    """`htsat-live detect *arguments --model <the tiny checkpoint>` run to its end where no input device exists,
    publishing on a socket in `tmp_path`."""
    # No PulseAudio daemon answers in this runtime directory, so there is no input device at all.
    env = {"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(tmp_path), "HOME": str(tmp_path)}
    command = [sys.executable, "-m", "htsat_live.cli", "detect", *arguments, "--model", str(tiny_checkpoint)]
    command += ["--set", f'publish.bind="ipc://{tmp_path}/x.sock"']
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_detect_without_a_source_or_microphone_plays_the_demo_recording(tmp_path, tiny_checkpoint):
    result = detect_without_a_microphone(tmp_path, tiny_checkpoint, "--fast", "--hop", "5", timeout=300)
    assert result.returncode == 0, result.stderr
    assert "no microphone" in result.stderr and "demo.wav" in result.stderr
    seconds = soundfile.info(REPO / "model" / "data" / "demo.wav").duration
    assert f"samples={round(seconds * 32000)}" in result.stdout


def test_detect_from_mic_without_any_microphone_says_so(tmp_path, tiny_checkpoint):
    result = detect_without_a_microphone(tmp_path, tiny_checkpoint, "mic", timeout=120)
    assert result.returncode == 2
    assert "No microphone" in result.stderr
