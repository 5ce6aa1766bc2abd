"""`htsat-live gui` on a real X server: Xvfb and Qt's xcb platform, as on a desktop (the other tests
draw offscreen). The window must show up at its size and draw what the pipeline found; the screen is
read back by a separate process, through the X server, as a screenshot tool would."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile
from PySide6.QtGui import QImage

from htsat_live.gui.colours import class_colour

SCREEN = (1600, 900)  # the screen of the x_display fixture (tests/conftest.py)
# what a screenshot tool does: ask the X server for the whole screen, through Qt's xcb platform
GRAB_SCREEN = (
    "import sys\nfrom PySide6.QtGui import QGuiApplication\napp = QGuiApplication(sys.argv[:1])\n"
    "sys.exit(0 if app.primaryScreen().grabWindow(0).save(sys.argv[1]) else 1)"
)


def window_geometry(env: dict, title: str) -> tuple[int, int, int, int] | None:
    """(x, y, width, height) of the top-level window named `title` on the X server, or None."""
    tree = subprocess.run(["xwininfo", "-root", "-tree"], env=env, capture_output=True, text=True, timeout=10).stdout
    for line in tree.splitlines():
        match = re.search(r'"(.*)": \(.*\)\s+(\d+)x(\d+)\+(-?\d+)\+(-?\d+)', line)
        if match and match.group(1) == title:
            width, height, x, y = (int(v) for v in match.groups()[1:])
            return x, y, width, height
    return None


def screen_pixels_of(env: dict, path: Path, colour, area: tuple[int, int, int, int]) -> int:
    """Grab the X screen into `path`; how many pixels in `area` (x, y, width, height) have `colour`."""
    if subprocess.run([sys.executable, "-c", GRAB_SCREEN, str(path)], env=env, timeout=30).returncode != 0:
        return 0
    image = QImage(str(path))
    x, y, width, height = area
    return sum(
        image.pixelColor(px, py).rgb() == colour.rgb()
        for px in range(x, x + width, 2)
        for py in range(y, y + height, 2)
    )


def test_the_gui_shows_its_window_on_an_x_server_and_draws_the_events(x_display, tiny_checkpoint, tmp_path, wait_until):
    t = np.arange(6 * 32000) / 32000
    audio = tmp_path / "tone.wav"
    soundfile.write(audio, (0.3 * np.sin(2 * np.pi * 800 * t)).astype(np.float32), 32000)
    env = dict(os.environ, DISPLAY=x_display, QT_QPA_PLATFORM="xcb", XDG_CONFIG_HOME=str(tmp_path / "config"))
    command = [
        str(Path(sys.executable).parent / "htsat-live"),
        "gui",
        str(audio),
        "--model",
        str(tiny_checkpoint),
        "--fast",
        "--hop",
        "2.5",
        "--span",
        "10",
        "--set",
        "publish.enabled=false",
        "--set",
        "events.threshold=0.0",
        "--set",
        "events.allow=['class_1']",
    ]
    gui = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        title = f"htsat-live: {audio}"
        wait_until(
            lambda: window_geometry(env, title) is not None or gui.poll() is not None,
            90.0,
            "the window on the X server",
        )
        assert gui.poll() is None, f"htsat-live gui exited: {gui.communicate()[1]}"
        x, y, width, height = window_geometry(env, title)
        assert (width, height) == (1400, 860) and x + width <= SCREEN[0] and y + height <= SCREEN[1]
        # class_1 is active all through the file: its event bar, in its colour, is drawn in the lanes
        wait_until(
            lambda: screen_pixels_of(env, tmp_path / "screen.png", class_colour((1,)), (x, y, width, height)) > 200,
            60.0,
            "the event bar on the screen",
        )
        gui.send_signal(signal.SIGINT)  # Ctrl-C in the terminal
        assert gui.wait(timeout=30) == 0
    finally:
        if gui.poll() is None:
            gui.kill()
            gui.wait()
