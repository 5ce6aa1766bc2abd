"""`htsat-live gui` where no window can be shown (no display server, no display-less Qt platform) says
how to run it instead of letting Qt abort."""

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("arguments", [[], ["--connect", "tcp://127.0.0.1:5556"]])
def test_gui_without_a_display_says_how_to_run_it_in_one_line(arguments):
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    result = subprocess.run(
        [sys.executable, "-m", "htsat_live.cli", "gui", *arguments], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("htsat-live gui: no display")
    assert "xvfb-run htsat-live gui" in line and "--connect tcp://HOST:5556" in line
    assert result.stdout == ""
