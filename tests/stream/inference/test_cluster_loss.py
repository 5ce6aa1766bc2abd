"""The detector outlives its Ray cluster: a real `serve` process killed under a real-time `detect --inference
ray` costs counted windows, is said on `status`, is joined again once `serve` is back, and detect still ends
cleanly on Ctrl-C with every started event ended in the JSONL and the history.

Its own file: it needs this machine's Ray to be the one `serve` starts, not test_cluster.py's instance.
"""

import json
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


@pytest.mark.timeout(600)
def test_detect_outlives_a_killed_serve_counts_its_windows_and_ends_cleanly(tmp_path, read_lines):
    pytest.importorskip("ray", reason="Ray Serve is the optional extra: pip install -e '.[cluster]'")
    wave, rate = soundfile.read(str(DEMO_RECORDING), dtype="float32")
    soundfile.write(tmp_path / "long.wav", np.concatenate([wave] * 5), rate)  # 5 minutes: it never ends by itself
    address = f"ipc://{tmp_path}/htsat.sock"
    jsonl, history = tmp_path / "events.jsonl", tmp_path / "events.db"
    serve = start_serve(read_lines)
    detect = None
    try:
        subscriber = Subscriber(address, topics=("status",))
        detect = start(
            "detect",
            str(tmp_path / "long.wav"),
            "--inference",
            "ray",
            "--set",
            f'publish.bind="{address}"',
            "--set",
            f'sinks.jsonl="{jsonl}"',
            "--set",
            f'store.path="{history}"',
        )

        def status_where(condition, seconds: float, what: str) -> dict:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                assert detect.poll() is None, f"detect ended ({detect.returncode}): {detect.stderr.read()[-2000:]}"
                message = subscriber.receive(timeout=0.5)
                if message is not None and condition(message.body):
                    return message.body
            raise AssertionError(f"no status within {seconds} s with {what}")

        status_where(lambda s: s["counters"]["events"] >= 1, 120, "an event started")
        serve.kill()  # SIGKILL: Ray's processes go with it, and Ray's client code ends its driver process
        serve.wait(timeout=30)
        lost = status_where(
            lambda s: s["inference"]["state"] == "unreachable" and s["counters"]["failed_windows"] >= 2,
            60,
            "inference unreachable and failed windows counted",
        )
        assert lost["inference"]["error"], lost["inference"]
        serve = start_serve(read_lines)  # back: detect joins it again by itself
        back = status_where(
            lambda s: s["inference"]["state"] == "running" and s["inference"]["reconnects"] >= 1,
            180,
            "inference running again",
        )
        windows = back["counters"]["windows"]
        status_where(lambda s: s["counters"]["windows"] >= windows + 2, 60, "windows run after the reconnect")
        detect.send_signal(signal.SIGINT)
        out, err = detect.communicate(timeout=120)
    finally:
        if detect is not None:
            end(detect, signal.SIGKILL)
        end(serve)
    assert detect.returncode == 0, err[-2000:]
    assert "Traceback" not in err and "Terminate the process" not in err
    assert "state=running" in out and "reconnects=1" in out
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    starts = {row["id"] for row in rows if row["state"] == "start"}
    ends = [row for row in rows if row["state"] == "end"]
    assert starts and starts == {row["id"] for row in ends}  # every started event ended
    with closing(sqlite3.connect(history)) as connection:
        stored = connection.execute("SELECT label, onset, offset FROM events").fetchall()
    confirmed = [row for row in ends if not row["cancelled"] and row["confirmed"]]
    assert sorted(stored) == sorted((row["label"], row["onset"], row["offset"]) for row in confirmed)
