"""`htsat-live gui` as a user runs it: local mode on a file, quit with Ctrl+Q, sinks flushed; a
publish port that another program holds."""

import json
import time

import numpy as np
import soundfile
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from htsat_live.cli import main
from htsat_live.gui.window import LiveWindow
from htsat_live.stream.outputs.publish import Publisher, Subscriber


def shown_window() -> LiveWindow | None:
    windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, LiveWindow) and w.isVisible()]
    return windows[0] if windows else None


def while_it_runs(step, seconds: float = 60.0) -> None:
    """Call `step(window)` on Qt's event loop every 100 ms once the window shows, until it returns True;
    past `seconds`, close the window instead (the test's assertions then say what was missing)."""
    deadline = time.monotonic() + seconds

    def tick():
        window = shown_window()
        if window is not None and step(window):
            return
        if time.monotonic() > deadline:
            if window is not None:
                window.close()
            return
        QTimer.singleShot(100, tick)

    QTimer.singleShot(100, tick)


def test_gui_runs_a_file_and_ctrl_q_stops_the_pipeline_and_flushes_the_sinks(qapp, tiny_checkpoint, tmp_path):
    t = np.arange(6 * 32000) / 32000
    soundfile.write(tmp_path / "tone.wav", (0.3 * np.sin(2 * np.pi * 800 * t)).astype(np.float32), 32000)
    events = tmp_path / "events.jsonl"
    seen = {}

    def quit_when_drawn(window) -> bool:
        if window.live.status.get("source_state") != "ended":
            return False
        seen["title"] = window.windowTitle()
        seen["now"] = window.live.now
        QTest.keyClick(window, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
        return True

    while_it_runs(quit_when_drawn)
    code = main(
        [
            "gui",
            str(tmp_path / "tone.wav"),
            "--model",
            str(tiny_checkpoint),
            "--fast",
            "--hop",
            "2.5",
            "--set",
            "publish.enabled=false",
            "--set",
            "events.threshold=0.0",
            "--set",
            "events.allow=['class_1']",
            "--set",
            f"sinks.jsonl='{events}'",
        ]
    )
    assert code == 0
    assert seen["title"] == f"htsat-live: {tmp_path / 'tone.wav'}" and seen["now"] >= 5.9
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(line["label"], line["state"]) for line in lines] == [("class_1", "start"), ("class_1", "end")]


def test_gui_refuses_a_source_together_with_connect(capsys):
    assert main(["gui", "some.wav", "--connect", "tcp://127.0.0.1:5556"]) == 2
    assert "either a SOURCE" in capsys.readouterr().err


def test_a_taken_publish_port_moves_publishing_to_a_free_port_and_says_so(qapp, tiny_checkpoint, tmp_path, capsys):
    t = np.arange(20 * 32000) / 32000
    soundfile.write(tmp_path / "tone.wav", (0.3 * np.sin(2 * np.pi * 800 * t)).astype(np.float32), 32000)
    holder = Publisher("tcp://127.0.0.1:*")  # another detector holds the port
    seen = {}

    def listen_then_quit(window) -> bool:
        text = window.status_bar.connection.text()
        if "receiving" in text and "subscriber" not in seen:
            seen["text"] = text
            seen["subscriber"] = Subscriber(text.split("publishing on ")[1].split(" ")[0], topics=("status",))
        if "subscriber" not in seen or seen["subscriber"].receive(0.0) is None:
            return False
        seen["received"] = True  # the window's pipeline publishes there indeed
        QTest.keyClick(window, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
        return True

    while_it_runs(listen_then_quit)
    try:
        code = main(
            [
                "gui",
                str(tmp_path / "tone.wav"),
                "--model",
                str(tiny_checkpoint),
                "--hop",
                "2.5",
                "--set",
                f"publish.bind='{holder.address}'",
            ]
        )
    finally:
        holder.close()
        if "subscriber" in seen:
            seen["subscriber"].close()
    assert code == 0 and seen.get("received")
    assert seen["text"].startswith("local pipeline, publishing on tcp://127.0.0.1:")
    assert seen["text"].endswith(f"({holder.address} is taken): receiving")
    said = capsys.readouterr().err
    assert f"cannot publish on {holder.address}: Address already in use" in said
    assert "; publishing on tcp://127.0.0.1:" in said
