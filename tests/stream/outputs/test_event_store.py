"""The event history: a real SQLite file written by its own thread, read by `htsat-live events`, and a
process killed with SIGKILL while it writes."""

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

from htsat_live.cli import main
from htsat_live.stream.config import SinksConfig
from htsat_live.stream.messages import EventMessage
from htsat_live.stream.output import close_outputs
from htsat_live.stream.outputs.event_store import (
    SCHEMA_VERSION,
    EventStore,
    EventStoreError,
    connect,
    default_path,
    parse_since,
    query,
    resolve_path,
)
from htsat_live.stream.outputs.sinks import Sinks
from htsat_live.stream.ring import RingBuffer
from htsat_live.stream.status import output_sections

RATE = 32000


def stored(path: Path) -> list[dict]:
    connection = connect(path)
    try:
        return query(connection)
    finally:
        connection.close()


def test_only_events_that_really_ended_are_stored(tmp_path, make_event):
    history = EventStore(tmp_path / "events.db")
    history.write("mic", make_event(id=1, state="start", confirmed=False))
    history.write("mic", make_event(id=1, state="update"))
    history.write("mic", make_event(id=1))
    history.write("mic", make_event(id=2, cancelled=True, confirmed=False))  # revised away before confirmation
    history.write("mic", make_event(id=3, cancelled=True))  # revised away after it
    history.write("cam", make_event(id=1, label="Cat"))
    history.close()
    rows = stored(tmp_path / "events.db")
    assert [(r["stream"], r["label"]) for r in rows] == [("mic", "Dog"), ("cam", "Cat")]
    assert rows[0]["onset"] == pytest.approx(10.0) and rows[0]["offset"] == pytest.approx(15.0)
    assert rows[0]["onset_wall"] == pytest.approx(1.7e9 + 10.0) and (rows[0]["peak"], rows[0]["mean"]) == (0.9, 0.7)
    assert rows[0]["clip"] is None and history.written == 2
    with sqlite3.connect(tmp_path / "events.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_clip_cut_for_an_event_is_recorded_with_it(tmp_path, make_event):
    history = EventStore(tmp_path / "events.db")
    sinks = Sinks.from_config(
        SinksConfig(clips_dir=str(tmp_path / "clips"), pre_roll=0.5, post_roll=0.5), history.clip_saved
    )
    ring = RingBuffer(30 * RATE, RATE)
    sinks.attach("mic", ring)
    ring.write((0.25 * np.sin(np.arange(20 * RATE) / 10)).astype(np.float32))
    for output in (history, sinks):  # as the pipeline lists them: the store first
        output.handle(EventMessage("mic", make_event()))  # 10 s .. 15 s: its audio is there
    close_outputs([history, sinks])
    [row] = stored(tmp_path / "events.db")
    [clip] = (tmp_path / "clips").iterdir()
    assert row["clip"] == str(clip)
    assert output_sections([history, sinks])["sinks"]["history_written"] == 1


def test_a_new_file_is_created_and_migrated_an_empty_one_too(tmp_path):
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()  # a database at schema version 0
    for path in (tmp_path / "deep" / "new.db", empty):
        EventStore(path).close()
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            assert connection.execute("SELECT count(*) FROM events").fetchone()[0] == 0


def test_files_that_are_no_history_of_ours_are_refused_naming_the_setting(tmp_path, read_only_dir):
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE t (x)")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(np.random.default_rng(0).bytes(8192))
    for path, problem in (
        (newer, "is newer than this htsat-live"),
        (foreign, "not an htsat-live event history"),
        (garbage, "not a database"),
        (read_only_dir / "sub" / "x.db", "cannot write .*: (read-only file system|permission denied)"),
    ):
        with pytest.raises(EventStoreError, match=f"store.path: .*{problem}"):
            EventStore(path)


def test_rows_older_than_keep_days_are_pruned(tmp_path, make_event):
    history = EventStore(tmp_path / "events.db")
    history.write("mic", make_event(id=1, wall=time.time() - 40 * 86400))
    history.write("mic", make_event(id=2, wall=time.time() - 86400))
    history.close()
    EventStore(tmp_path / "events.db", keep_days=30).close()  # pruned at start
    assert [row["onset_wall"] > time.time() - 30 * 86400 for row in stored(tmp_path / "events.db")] == [True]
    EventStore(tmp_path / "events.db", keep_days=0).close()  # 0 keeps everything
    assert len(stored(tmp_path / "events.db")) == 1


def test_a_full_disk_costs_the_history_its_rows_not_the_caller(small_disk, make_event):
    history = EventStore(small_disk / "events.db")
    for i in range(1, 3001):  # far more than 64 KiB of rows
        history.write("mic", make_event(id=i, label="x" * 100))
        if i % 10 == 0:
            time.sleep(0.002)  # lets the writer commit small batches, as a live stream would
    history.close()
    assert history.failures > 0 and history.written > 0
    assert history.written + history.failures == 3000


def test_the_xdg_data_home_holds_the_default_history(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_path() == tmp_path / "htsat-live" / "events.db"
    assert resolve_path("xdg") == default_path() and resolve_path("") is None
    assert resolve_path("~/e.db") == Path.home() / "e.db"


WRITER = """
import sys, time
from htsat_live.stream.events import Event
from htsat_live.stream.outputs.event_store import EventStore
history = EventStore(sys.argv[1])
i = 0
while True:
    i += 1
    history.write("mic", Event(id=i, state="end", label="Dog", classes=(74,), onset_frame=i, offset_frame=i + 100,
                               onset=i * 0.01, offset=i * 0.01 + 1, onset_wall=1.7e9 + i, offset_wall=1.7e9 + i + 1,
                               peak=0.9, mean=0.7, threshold=0.5, final=True, cancelled=False, latency=1.0,
                               confirmed=True, confirm_latency=2.0))
    if i % 20 == 0:
        print(history.written, flush=True)
        time.sleep(0.001)
"""


def test_a_process_killed_while_writing_leaves_a_readable_history_with_every_committed_event(tmp_path):
    path = tmp_path / "events.db"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    committed = 0
    try:
        for line in writer.stdout:
            committed = int(line)
            if committed >= 2000:
                break
    finally:
        writer.send_signal(signal.SIGKILL)  # no chance to finish a transaction, close or checkpoint
        writer.wait(timeout=30)
    assert committed >= 2000, "the writer ended before committing enough events"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:  # read as `htsat-live events` does
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ids = [row[0] for row in connection.execute("SELECT event_id FROM events ORDER BY event_id")]
    assert len(ids) >= committed
    assert ids == list(range(1, len(ids) + 1))  # whole transactions only: nothing torn, nothing skipped


def events_command(capsys, *args) -> tuple[int, str, str]:
    code = main(["events", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_events_command_filters_and_formats_the_history(tmp_path, capsys, make_event):
    path = tmp_path / "events.db"
    history = EventStore(path)
    now = time.time()
    history.write("mic", make_event(id=1, label="Dog", wall=now - 7200))
    history.write("mic", make_event(id=2, label="Speech", wall=now - 60))
    history.write("door", make_event(id=1, label="Dog", wall=now - 30))
    history.close()
    code, out, _ = events_command(capsys, "--db", str(path), "--format", "json")
    assert code == 0 and [row["label"] for row in json.loads(out)] == ["Dog", "Speech", "Dog"]
    code, out, _ = events_command(capsys, "--db", str(path), "--since", "1h", "--format", "json")
    assert [(row["stream"], row["label"]) for row in json.loads(out)] == [("mic", "Speech"), ("door", "Dog")]
    code, out, _ = events_command(capsys, "--db", str(path), "--label", "Dog", "--stream", "door", "--format", "tsv")
    lines = out.splitlines()
    assert (
        lines[0].split("\t")[:3] == ["stream", "label", "onset"]
        and len(lines) == 2
        and lines[1].startswith("door\tDog")
    )
    code, out, _ = events_command(capsys, "--db", str(path))
    assert code == 0 and out.splitlines()[0].startswith("start (local time)") and out.endswith("3 events\n")
    assert parse_since("2025-11-25 14:00") == pytest.approx(time.mktime((2025, 11, 25, 14, 0, 0, 0, 0, -1)))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--since", "yesterday"], "--since: expected an age"),
        (["--db", "missing.db"], "no event history at missing.db"),
    ],
)
def test_the_events_command_says_what_is_wrong_in_one_line(capsys, args, message):
    code, out, err = events_command(capsys, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_events_finds_a_label_typed_in_another_case_and_suggests_a_near_miss(tmp_path, capsys, make_event):
    path = tmp_path / "events.db"
    history = EventStore(path)
    history.write("mic", make_event(id=1, label="Bird", wall=time.time() - 60))
    history.write("mic", make_event(id=2, label="Speech", wall=time.time() - 30))
    history.close()
    code, out, err = events_command(capsys, "--db", str(path), "--label", "bird", "--format", "json")
    assert code == 0 and [row["label"] for row in json.loads(out)] == ["Bird"] and err == ""
    code, out, err = events_command(capsys, "--db", str(path), "--label", "brid", "--format", "json")
    assert code == 0 and json.loads(out) == []
    assert err.strip().splitlines() == ["htsat-live events: no events of 'brid'; did you mean 'Bird'?"]
    code, out, err = events_command(capsys, "--db", str(path), "--label", "Horse", "--format", "json")
    assert code == 0 and json.loads(out) == [] and err == ""


def test_events_on_a_newer_or_a_foreign_database_says_what_it_is_and_never_to_upgrade_it(tmp_path, capsys):
    newer, foreign, empty = tmp_path / "newer.db", tmp_path / "foreign.db", tmp_path / "empty.db"
    with closing(sqlite3.connect(newer)) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with closing(sqlite3.connect(foreign)) as connection:
        connection.execute("CREATE TABLE t (x)")
    empty.write_bytes(b"")  # SQLite's empty database
    for path, line in (
        (
            newer,
            f"schema version {SCHEMA_VERSION + 1} is newer than this htsat-live's ({SCHEMA_VERSION}): read it with "
            "the htsat-live that wrote it, or a newer one",
        ),
        (foreign, "not an htsat-live event history (it holds other tables); --db names another file"),
        (empty, "an empty database, no event history yet"),
    ):
        code, out, err = events_command(capsys, "--db", str(path))
        assert code == 2 and out == "" and "upgrade" not in err
        assert err.strip().splitlines() == [f"htsat-live events: {path}: {line}"]


def test_detect_keeps_its_confirmed_events_in_the_default_history(tmp_path, capsys, run_demo_detect):
    jsonl = tmp_path / "events.jsonl"
    result = run_demo_detect(f"sinks.jsonl='{jsonl}'")
    assert result.returncode == 0, result.stderr
    ends = [r for r in map(json.loads, jsonl.read_text().splitlines()) if r["state"] == "end" and not r["cancelled"]]
    assert len(ends) >= 10
    rows = stored(default_path())  # this test's XDG_DATA_HOME (tests/stream/conftest.py)
    assert sorted((r["label"], r["onset"], r["offset"]) for r in rows) == sorted(
        (e["label"], e["onset"], e["offset"]) for e in ends
    )
    assert "history_written=" in result.stdout
    code, out, _ = events_command(capsys, "--label", "Speech", "--format", "json")
    assert code == 0 and {row["label"] for row in json.loads(out)} == {"Speech"}
