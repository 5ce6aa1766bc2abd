"""The console of `htsat-live detect` (docs/console.md): its lines come in the order of their stamps, the
stream time each report was made at, and name every event by the id it has in the JSONL sink, on ZeroMQ
and in the history."""

import json
import re
import sqlite3
import subprocess
import sys
import time
from contextlib import closing

from htsat_live.model import DEMO_RECORDING
from htsat_live.stream.outputs.event_store import default_path
from htsat_live.stream.outputs.publish import Subscriber

LINE = re.compile(
    r"^\[\s*(?P<stamp>\d+\.\d\d) s\] (?P<state>start|end)\s+#(?P<id>\d+)\s+(?P<label>\S+)  "
    r"(?:from (?P<onset>\d+\.\d\d) s \(score \d\.\d\d\)"
    r"|(?P<span>\d+\.\d\d-\d+\.\d\d) s(?P<cancelled> \(cancelled: revised scores\))?.*)$"
)


def test_the_console_of_the_demo_is_in_order_and_uses_the_ids_of_every_output(tmp_path):
    jsonl, address = tmp_path / "events.jsonl", f"ipc://{tmp_path}/detect.sock"
    subscriber = Subscriber(address, topics=("event",))  # connects once detect binds
    received = []
    with open(tmp_path / "console.txt", "w") as console:
        detect = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "htsat_live.cli",
                "detect",
                str(DEMO_RECORDING),
                "--fast",
                "--set",
                f"publish.bind='{address}'",
                "--set",
                f"sinks.jsonl='{jsonl}'",
            ],
            stdout=console,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                message = subscriber.receive(timeout=0.5)
                if message is not None:
                    received.append(message.body)
                elif detect.poll() is not None:
                    break
            _, err = detect.communicate(timeout=60)
        finally:
            detect.kill()
            subscriber.close()
    assert detect.returncode == 0, err
    lines = [LINE.match(line) for line in (tmp_path / "console.txt").read_text().splitlines() if "] " in line]
    assert lines and all(lines), "a console line of an unexpected form"

    stamps = [float(line["stamp"]) for line in lines]
    assert stamps == sorted(stamps)  # in the order of their stamps, whatever the event times
    for line in lines:  # a report is made once the audio it tells of was judged
        told = float(line["onset"]) if line["state"] == "start" else float(line["span"].split("-")[1])
        assert float(line["stamp"]) >= told
    states = {}
    for line in lines:
        states.setdefault(int(line["id"]), []).append(line["state"])
    assert all(seen == ["start", "end"] for seen in states.values())

    reports = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert set(states) == {r["id"] for r in reports if r["confirmed"]}  # confirmed events only, by their own ids
    ends = {r["id"]: r for r in reports if r["state"] == "end"}
    for line in (line for line in lines if line["state"] == "end"):
        end = ends[int(line["id"])]
        assert (line["label"], line["span"], bool(line["cancelled"])) == (
            end["label"],
            f"{end['onset']:.2f}-{end['offset']:.2f}",
            end["cancelled"],
        )

    with closing(sqlite3.connect(default_path())) as connection:  # this test's XDG_DATA_HOME
        stored = connection.execute("SELECT event_id, label FROM events").fetchall()
    assert sorted(stored) == sorted(
        (int(line["id"]), line["label"]) for line in lines if line["state"] == "end" and not line["cancelled"]
    )

    # ZeroMQ carries the same reports as the JSONL sink (a subscriber may miss the first ones while connecting)
    published = [
        {key: body[key] for key in ("id", "state", "label", "onset", "offset")}
        for body in received
        if body["state"] != "update"
    ]
    logged = [{key: r[key] for key in ("id", "state", "label", "onset", "offset")} for r in reports]
    assert len(published) >= len(logged) // 2 and published == logged[len(logged) - len(published) :]
