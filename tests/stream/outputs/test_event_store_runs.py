"""`htsat-live events` tells the runs of detect apart: a run column in every format, `--run ID` and
`--run last`, on a history written by two real detect runs."""

import json
import subprocess
import sys

import soundfile

from htsat_live.model import DEMO_RECORDING


def detect(path, jsonl) -> list[dict]:
    """Run detect on `path` into the default history (this test's XDG_DATA_HOME); the events it finished."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "htsat_live.cli",
            "detect",
            str(path),
            "--fast",
            "--set",
            "publish.enabled=false",
            "--set",
            f"sinks.jsonl='{jsonl}'",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    reports = [json.loads(line) for line in jsonl.read_text().splitlines()]
    return [r for r in reports if r["state"] == "end" and r["confirmed"] and not r["cancelled"]]


def events(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "htsat_live.cli", "events", *args], capture_output=True, text=True, timeout=60
    )


def spans(rows) -> list[tuple]:
    return sorted((row["label"], row["onset"], row["offset"]) for row in rows)


def test_events_shows_and_filters_the_run_of_each_detect(tmp_path):
    audio, rate = soundfile.read(DEMO_RECORDING, dtype="float32")
    soundfile.write(tmp_path / "first.wav", audio[: 20 * rate], rate)
    soundfile.write(tmp_path / "second.wav", audio[40 * rate :], rate)
    first = detect(tmp_path / "first.wav", tmp_path / "first.jsonl")
    second = detect(tmp_path / "second.wav", tmp_path / "second.jsonl")
    assert first and second

    every = json.loads(events("--format", "json").stdout)
    runs = {}
    for row in every:
        runs.setdefault(row["run"], []).append(row)
    assert len(runs) == 2
    first_run, second_run = (run for run, rows in runs.items() if spans(rows) in (spans(first), spans(second)))
    assert spans(runs[first_run]) == spans(first) and spans(runs[second_run]) == spans(second)

    last = events("--run", "last", "--format", "json")
    assert last.returncode == 0 and spans(json.loads(last.stdout)) == spans(second)
    chosen = events("--run", first_run, "--format", "json")
    assert {row["run"] for row in json.loads(chosen.stdout)} == {first_run}

    tsv = events("--run", first_run, "--format", "tsv").stdout.splitlines()
    assert tsv[0].split("\t")[-1] == "run" and all(line.endswith(f"\t{first_run}") for line in tsv[1:])
    assert len(tsv) == 1 + len(first)
    table = events("--run", "last").stdout.splitlines()
    assert table[0].split()[:4] == ["start", "(local", "time)", "run"]
    assert all(line.split()[2] == second_run for line in table[1:-1]) and table[-1] == f"{len(second)} events"

    wrong = events("--run", "latest")
    assert wrong.returncode == 2 and wrong.stdout == ""
    (line,) = wrong.stderr.splitlines()
    assert line.startswith("htsat-live events: --run: expected a run id")
