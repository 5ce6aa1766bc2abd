"""`htsat-live devices`: the inputs PortAudio sees, or one line saying there are none."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


def devices(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "htsat_live.cli", "devices"], env=env, capture_output=True, text=True, timeout=60
    )


def test_devices_without_any_input_says_so_in_one_line_and_exits_0(virtual_mic, tmp_path):
    # A sound server runs (the virtual microphone), but PULSE_SERVER sends PortAudio's ALSA plugin to a socket
    # that does not exist: no PulseAudio device, with or without a daemon running elsewhere.
    asound = Path("/proc/asound/pcm")
    if asound.is_file() and "capture" in asound.read_text():
        pytest.skip("a sound card with a capture device: ALSA lists it whatever the sound server")
    env = dict(os.environ, PULSE_SERVER=f"unix:{tmp_path}/no-server", HOME=str(tmp_path))
    result = devices(env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "no audio input devices found; `htsat-live detect` without a SOURCE plays the embedded demo recording"
    ]
    assert result.stderr == ""


def test_devices_lists_the_virtual_microphone_as_the_default_input(virtual_mic):
    result = devices(dict(os.environ))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("*") for line in lines[:-1])  # the default input is marked
    assert lines[-1] == "use as SOURCE: mic:INDEX or mic:NAME-PART; * = the default input"
