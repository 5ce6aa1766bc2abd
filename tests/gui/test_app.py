"""`htsat-live gui` as a user runs it: local mode on a file, quit with Ctrl+Q, sinks flushed."""

import json

import numpy as np
import soundfile
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from htsat_live.cli import main
from htsat_live.gui.window import LiveWindow


def test_gui_runs_a_file_and_ctrl_q_stops_the_pipeline_and_flushes_the_sinks(qapp, tiny_checkpoint, tmp_path):
    t = np.arange(6 * 32000) / 32000
    soundfile.write(tmp_path / "tone.wav", (0.3 * np.sin(2 * np.pi * 800 * t)).astype(np.float32), 32000)
    events = tmp_path / "events.jsonl"
    seen = {}

    def quit_when_drawn():
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, LiveWindow) and w.isVisible()]
        if windows and windows[0].live.status.get("source_state") == "ended":
            seen["title"] = windows[0].windowTitle()
            seen["now"] = windows[0].live.now
            QTest.keyClick(windows[0], Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
        else:
            QTimer.singleShot(100, quit_when_drawn)

    QTimer.singleShot(100, quit_when_drawn)
    code = main(["gui", str(tmp_path / "tone.wav"), "--model", str(tiny_checkpoint), "--fast", "--hop", "2.5",
                 "--set", "publish.enabled=false", "--set", "events.threshold=0.0", "--set", "events.allow=['class_1']",
                 "--set", f"sinks.jsonl='{events}'"])
    assert code == 0
    assert seen["title"] == f"htsat-live: {tmp_path / 'tone.wav'}" and seen["now"] >= 5.9
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(line["label"], line["state"]) for line in lines] == [("class_1", "start"), ("class_1", "end")]


def test_gui_refuses_a_source_together_with_connect(capsys):
    assert main(["gui", "some.wav", "--connect", "tcp://127.0.0.1:5556"]) == 2
    assert "either a SOURCE" in capsys.readouterr().err
