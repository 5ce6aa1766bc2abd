"""`htsat-live gui` with a DISPLAY whose X server cannot be reached (it stopped, or an SSH session's
forwarding closed) says so in one line and exits 2, where Qt's xcb platform would abort the process; and an X
server that resets between clients (Xvfb as `xvfb-run` starts it) lets Qt connect every time."""

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

from htsat_live.gui.app import open_x_display

RESET_ATTEMPTS = 300  # a connection made as the server resets is refused about one time in 20


def unused_display() -> str:
    """A display number that no X server holds on this host (no socket, no lock file)."""
    for number in range(240, 400):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            return f":{number}"
    pytest.fail("every display number from :240 to :399 is taken")


@pytest.mark.parametrize("platform", ["xcb", ""])
def test_gui_on_a_display_that_is_gone_says_so_in_one_line(platform):
    display = unused_display()
    env = {name: value for name, value in os.environ.items() if name not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(DISPLAY=display, **({"QT_QPA_PLATFORM": platform} if platform else {}))
    result = subprocess.run(
        [sys.executable, "-m", "htsat_live.cli", "gui"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, f"exit {result.returncode}: {result.stderr[-2000:]}"
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"htsat-live gui: cannot connect to the X display {display} (DISPLAY)"), line
    assert result.stdout == ""


def test_qt_connects_while_the_display_is_held_though_the_server_resets_between_clients(x_display, monkeypatch):
    """The x_display fixture's Xvfb resets whenever its last client leaves and refuses connections meanwhile:
    open_x_display retries through a reset, and while its connection is held the next client (Qt's, in the
    gui) is never refused."""
    monkeypatch.setenv("DISPLAY", x_display)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    xcb = ctypes.CDLL("libxcb.so.1")
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    for attempt in range(RESET_ATTEMPTS):
        release, problem = open_x_display()
        assert problem == "", f"attempt {attempt}: {problem}"
        connection = xcb.xcb_connect(x_display.encode(), None)  # as QApplication does
        error = xcb.xcb_connection_has_error(connection)
        xcb.xcb_disconnect(connection)
        release()  # the last client leaves: the server resets
        assert error == 0, f"attempt {attempt}: the connection made while the display was held got error {error}"
