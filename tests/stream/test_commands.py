"""The `detect` command: a bad setting is one line and exit 2; several sources name their stream on the
console."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("windows.hop=abc", "windows.hop: must be a number"),
        ("model.path=nonexistent.ckpt", "nonexistent.ckpt: no such checkpoint file"),
    ],
)
def test_detect_exits_2_with_one_line_on_a_bad_set_value(assignment, message):
    result = subprocess.run(
        [sys.executable, "-m", "htsat_live.cli", "detect", "--set", assignment, "--set", "publish.enabled=false"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_detect_of_several_sources_names_the_stream_on_each_event_line(tmp_path):
    import soundfile as sf

    from htsat_live.model.embedded import DEMO_RECORDING

    audio, rate = sf.read(DEMO_RECORDING, dtype="float32")
    parts = [tmp_path / "first.wav", tmp_path / "second.wav"]
    sf.write(parts[0], audio[: 20 * rate], rate)  # Speech, Music and Animal events
    sf.write(parts[1], audio[40 * rate :], rate)  # Water and Bird events
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "htsat_live.cli",
            "detect",
            *map(str, parts),
            "--fast",
            "--set",
            'source.names=["porch", "yard"]',
            "--set",
            "publish.enabled=false",
            "--set",
            'store.path=""',
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    event_lines = [line for line in result.stdout.splitlines() if "] start " in line or "] end " in line]
    assert event_lines
    assert all(line.startswith(("porch: [", "yard: [")) for line in event_lines)
    assert {line.split(":")[0] for line in event_lines} == {"porch", "yard"}
