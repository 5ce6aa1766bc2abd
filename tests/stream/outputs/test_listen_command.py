"""`htsat-live listen` against a real publisher: events and a one-line status by default, the large `scores`
and `mel` messages and raw status bodies on request."""

import json
import subprocess
import sys
import threading

from htsat_live.stream.outputs.publish import Publisher

STATUS = {  # a status body as docs/schema.md shows it, with a few things gone wrong
    "source": "mic",
    "source_state": "running",
    "error": "window 7: injected",
    "sample_rate": 32000,
    "input_rate": 48000,
    "level_dbfs": -23.44,
    "peak_dbfs": -6.12,
    "stream_seconds": 61.02,
    "hop": 1.25,
    "window": 10.0,
    "model": "default",
    "backend": "torch",
    "device": "cpu",
    "num_classes": 527,
    "thresholds": {"Speech": [0.5, 0.4]},
    "final_upto": 5888,
    "rates": {"windows_per_s": 0.8, "audio_seconds_per_s": 1.0},
    "counters": {
        "samples": 1952640,
        "windows": 48,
        "skipped_windows": 2,
        "failed_windows": 1,
        "overruns": 0,
        "input_overflows": 0,
        "nonfinite_samples": 0,
        "reconnects": 0,
        "gap_seconds": 0.0,
        "loops": 0,
        "events": 9,
        "confirmed_events": 7,
    },
    "dropped": {"event": 0, "scores": 3, "status": 0, "mel": 1},
    "sinks": {},
    "mqtt": None,
    "inference": None,
    "loudness": None,
    "queue": 0,
    "latency": {
        "hop_p50": 0.21,
        "hop_p95": 0.334,
        "event_p50": 1.4,
        "event_p95": 2.9,
        "confirmed_p50": 2.4,
        "confirmed_p95": 4.1,
    },
}
STATUS_LINE = (
    "status mic: running at 61.0 s, level -23.4 dBFS (peak -6.1), torch on cpu, hop 1.25 s, "
    "latency p95 0.33 s, events 7, skipped windows 2, failed windows 1, dropped 4 messages, "
    "error: window 7: injected"
)


def listen(count: int, *options: str) -> list[str]:
    """The lines `listen` prints for its first `count` messages, while a publisher sends each topic in turn."""
    with Publisher("tcp://127.0.0.1:*") as publisher:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "htsat_live.cli",
                "listen",
                publisher.address,
                "--count",
                str(count),
                "--timeout",
                "30",
                *options,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            for n in range(600):  # until it has heard enough (its subscription takes a moment to arrive)
                publisher.send("scores", "mic", {"grid_start": n, "frames": [[0.5] * 4] * 2})  # small: the pipe
                publisher.send("mel", "mic", {"grid_start": n, "frames": [[-30.0] * 4] * 2})  # is read at the end
                publisher.send("event", "mic", {"id": n, "state": "start", "label": "Dog"})
                publisher.send("status", "mic", STATUS)
                if process.poll() is not None:
                    break
                threading.Event().wait(0.05)
            out, err = process.communicate(timeout=30)
        finally:
            process.kill()
    assert process.returncode == 0, err
    return out.splitlines()


def test_listen_shows_events_and_a_one_line_status_by_default():
    lines = listen(8)
    assert len(lines) == 8
    events = [json.loads(line.removeprefix("event ")) for line in lines if line.startswith("event {")]
    statuses = [line for line in lines if line.startswith("status ")]
    assert len(events) + len(statuses) == 8 and events and statuses
    assert all(event["topic"] == "event" and event["label"] == "Dog" for event in events)
    assert set(statuses) == {STATUS_LINE}


def test_listen_prints_the_chosen_topics_raw_on_request():
    lines = listen(12, "--topic", "all", "--json")
    topics = {line.split(" ", 1)[0] for line in lines}
    assert topics == {"event", "scores", "status", "mel"}
    assert all(json.loads(line.split(" ", 1)[1])["topic"] == line.split(" ", 1)[0] for line in lines)
    status = next(json.loads(line.removeprefix("status ")) for line in lines if line.startswith("status "))
    assert status["counters"] == STATUS["counters"] and status["stream"] == "mic"
    scores_only = listen(3, "--topic", "scores")
    assert [line.split(" ", 1)[0] for line in scores_only] == ["scores"] * 3
