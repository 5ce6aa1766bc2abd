"""The detector outlives its Ray cluster: a real `serve` process killed, or the Ray instance itself stopped, under a
real-time `detect --inference ray` costs counted windows, said on `status` and in a few stderr lines (not one per
window); detect joins `serve` again once it is back, and ends cleanly on Ctrl-C with every started event ended in
the JSONL and the history.

Its own file: it needs this machine's Ray to be the one `serve` starts, not test_cluster.py's instance.
"""

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import soundfile

from htsat_live.model import DEMO_RECORDING
from htsat_live.stream.outputs.publish import Subscriber

REPO = Path(__file__).resolve().parents[3]


def start(*arguments: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "htsat_live.cli", *arguments],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_serve(read_lines) -> subprocess.Popen:
    serve = start("serve", "--replicas", "1")
    lines = read_lines(serve.stdout)
    while not lines.next_line(240, "serve to deploy the model").startswith("send windows here"):
        pass
    return serve


def end(process: subprocess.Popen, how=signal.SIGINT) -> None:
    if process.poll() is None:
        process.send_signal(how)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


class RealTimeDetect:
    """`detect --inference ray` on a 5-minute recording paced in real time (it never ends by itself), with a JSONL
    sink, a history and a status subscriber."""

    def __init__(self, tmp_path: Path):
        wave, rate = soundfile.read(str(DEMO_RECORDING), dtype="float32")
        soundfile.write(tmp_path / "long.wav", np.concatenate([wave] * 5), rate)
        address = f"ipc://{tmp_path}/htsat.sock"
        self.jsonl, self.history = tmp_path / "events.jsonl", tmp_path / "events.db"
        self.subscriber = Subscriber(address, topics=("status",))
        self.process = start(
            "detect",
            str(tmp_path / "long.wav"),
            "--inference",
            "ray",
            "--set",
            f'publish.bind="{address}"',
            "--set",
            f'sinks.jsonl="{self.jsonl}"',
            "--set",
            f'store.path="{self.history}"',
        )

    def status_where(self, condition, seconds: float, what: str) -> dict:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (
                f"detect ended ({self.process.returncode}): {self.process.stderr.read()[-2000:]}"
            )
            message = self.subscriber.receive(timeout=0.5)
            if message is not None and condition(message.body):
                return message.body
        raise AssertionError(f"no status within {seconds} s with {what}")

    def interrupt(self) -> tuple[str, str]:
        """Ctrl-C; (stdout, stderr) once it ended."""
        self.process.send_signal(signal.SIGINT)
        return self.process.communicate(timeout=120)

    def assert_every_started_event_ended(self) -> None:
        rows = [json.loads(line) for line in self.jsonl.read_text().splitlines()]
        starts = {row["id"] for row in rows if row["state"] == "start"}
        ends = [row for row in rows if row["state"] == "end"]
        assert starts and starts == {row["id"] for row in ends}  # every started event ended
        with closing(sqlite3.connect(self.history)) as connection:
            stored = connection.execute("SELECT label, onset, offset FROM events").fetchall()
        confirmed = [row for row in ends if not row["cancelled"] and row["confirmed"]]
        assert sorted(stored) == sorted((row["label"], row["onset"], row["offset"]) for row in confirmed)


def failure_lines(err: str) -> list[str]:
    """detect's own stderr lines about failed windows."""
    return [line for line in err.splitlines() if line.startswith("htsat-live: ") and "failed" in line]


def most_failure_lines(failing_seconds: float) -> int:
    """The most lines about a run of failed windows this long: its first failure, one of another kind, one
    summary per FAILURE_SUMMARY_SECONDS, and the last (the stop's summary or the way back)."""
    from htsat_live.stream.inference.worker import FAILURE_SUMMARY_SECONDS

    return 3 + int(failing_seconds // FAILURE_SUMMARY_SECONDS)


def failed_windows(out: str) -> int:
    """The failed windows of detect's final counters."""
    return int(re.search(r"failed_windows=(\d+)", out).group(1))


@pytest.mark.timeout(600)
def test_detect_outlives_a_killed_serve_counts_its_windows_and_ends_cleanly(tmp_path, read_lines):
    pytest.importorskip("ray", reason="Ray Serve is the optional extra: pip install -e '.[cluster]'")
    serve = start_serve(read_lines)
    detect = None
    try:
        detect = RealTimeDetect(tmp_path)
        detect.status_where(lambda s: s["counters"]["events"] >= 1, 120, "an event started")
        serve.kill()  # SIGKILL: Ray's processes go with it, and Ray's client code ends its driver process
        killed = time.monotonic()
        serve.wait(timeout=30)
        lost = detect.status_where(
            lambda s: s["inference"]["state"] == "unreachable" and s["counters"]["failed_windows"] >= 2,
            60,
            "inference unreachable and failed windows counted",
        )
        assert lost["inference"]["error"], lost["inference"]
        serve = start_serve(read_lines)  # back: detect joins it again by itself
        back = detect.status_where(
            lambda s: s["inference"]["state"] == "running" and s["inference"]["reconnects"] >= 1,
            180,
            "inference running again",
        )
        failing_seconds = time.monotonic() - killed
        host, _, port = back["inference"]["address"].rpartition(":")  # the instance joined, not "auto"
        assert host and port.isdigit(), back["inference"]
        windows = back["counters"]["windows"]
        detect.status_where(lambda s: s["counters"]["windows"] >= windows + 2, 60, "windows run after the reconnect")
        out, err = detect.interrupt()
    finally:
        if detect is not None:
            end(detect.process, signal.SIGKILL)
        end(serve)
    assert detect.process.returncode == 0, err[-2000:]
    assert "Traceback" not in err and "Terminate the process" not in err
    assert "state=running" in out and "reconnects=1" in out
    said = failure_lines(err)  # the first failure, a summary at most every 30 s, and the way back
    assert said[-1].startswith("htsat-live: inference back after ") and len(said) <= most_failure_lines(failing_seconds)
    assert failed_windows(out) >= lost["counters"]["failed_windows"] >= 2
    detect.assert_every_started_event_ended()


@pytest.mark.timeout(600)  # its waits have deadlines: serve 240 s, an event 120 s, unreachable 60 s, 30 s more
def test_detect_outlives_its_ray_instance_stopped_under_it_and_ends_cleanly(tmp_path, read_lines):
    pytest.importorskip("ray", reason="Ray Serve is the optional extra: pip install -e '.[cluster]'")
    import psutil  # Ray's own dependency

    serve = start_serve(read_lines)  # it starts the Ray instance: its head (GCS), node (raylet) and their workers
    instance = psutil.Process(serve.pid).children(recursive=True)
    assert {"gcs_server", "raylet"} <= {process.name() for process in instance}
    detect = None
    try:
        detect = RealTimeDetect(tmp_path)
        detect.status_where(lambda s: s["counters"]["events"] >= 1, 120, "an event started")
        for process in instance:  # the whole instance killed, each of its processes by its id; serve's is left
            process.kill()
        psutil.wait_procs(instance, timeout=30)
        killed = time.monotonic()
        lost = detect.status_where(
            lambda s: s["inference"]["state"] == "unreachable" and s["counters"]["failed_windows"] >= 2,
            60,
            "inference unreachable and failed windows counted",
        )
        assert lost["inference"]["error"], lost["inference"]
        detect.status_where(  # it goes on: later windows are counted failed too
            lambda s: s["counters"]["failed_windows"] >= lost["counters"]["failed_windows"] + 3,
            30,
            "more windows counted failed",
        )
        failing_seconds = time.monotonic() - killed
        out, err = detect.interrupt()
    finally:
        if detect is not None:
            end(detect.process, signal.SIGKILL)
        end(serve, signal.SIGKILL)  # its instance is gone: nothing left to undeploy
        for process in instance:
            if process.is_running():
                process.kill()
    assert detect.process.returncode == 0, err[-2000:]
    assert "Traceback" not in err and "Terminate the process" not in err
    assert "state=unreachable" in out
    assert failed_windows(out) >= lost["counters"]["failed_windows"] + 3
    said = failure_lines(err)  # the first failure, then a summary at most every 30 s and one at the stop
    assert said and len(said) <= most_failure_lines(failing_seconds) < failed_windows(out), said
    assert any("inference on Ray unreachable" in line for line in said), said
    detect.assert_every_started_event_ended()
