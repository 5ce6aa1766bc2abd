"""The main window drawn offscreen from schema messages, checked from its pixels."""

import json

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from htsat_live.gui.colours import class_colour
from htsat_live.gui.live_data import LiveData
from htsat_live.model import load_model


def brightness(colour) -> int:
    return colour.red() + colour.green() + colour.blue()


def test_tone_row_is_brighter_than_its_neighbours(window, grab, messages, tiny_checkpoint):
    model = load_model(tiny_checkpoint)
    t = np.arange(20 * 32000) / 32000
    rng = np.random.default_rng(0)
    wave = (0.3 * np.sin(2 * np.pi * 1000 * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    live = LiveData(history_seconds=30)
    for second in range(20):  # one mel message per second of audio, as the publisher sends them
        mel = model.logmel(wave[second * 32000 : (second + 1) * 32000])[0, :100]  # [100, 64]
        assert live.apply("mel", messages.mel(second * 100, mel))
    tone_bin = int(np.argmax(model.logmel(wave[:32000])[0].mean(axis=0)))
    w = window(live, span_seconds=20)
    w.redraw()
    image = grab(w)
    for x in (3.0, 10.0, 17.0):
        tone = brightness(image.colour(w.spectrogram, x, tone_bin + 0.5))
        for other in (tone_bin - 6, tone_bin + 6):
            assert tone > brightness(image.colour(w.spectrogram, x, other + 0.5)) + 100


def test_event_bar_spans_its_onset_to_offset_in_its_lane(window, grab, messages, feed):
    live = LiveData()
    feed(live, 30)
    live.apply("event", messages.event(1, "start", "Dog", 10.0, 11.0, 0.7))
    live.apply("event", messages.event(1, "end", "Dog", 10.0, 15.0, 0.9))
    w = window(live, span_seconds=30)
    w.redraw()
    image = grab(w)
    assert w.lanes.lanes == ["Dog"]
    left, row = image.row(w.lanes, 0.5, 5.0, 20.0)
    coloured = [left + i for i, c in enumerate(row) if c.rgb() == class_colour((1,)).rgb()]
    assert coloured, "no bar drawn"
    assert abs(coloured[0] - image.point(w.lanes, 10.0, 0.5)[0]) <= 2
    assert abs(coloured[-1] - image.point(w.lanes, 15.0, 0.5)[0]) <= 2
    assert len(coloured) == coloured[-1] - coloured[0] + 1  # one solid bar
    ((bar, _, _),) = w.lanes._bars.values()
    assert bar.toolTip().startswith("Dog: peak 0.90\n10.00-15.00 s")  # what hovering shows


def test_each_label_gets_its_own_lane_and_cancelled_events_vanish(window, grab, messages, feed):
    live = LiveData()
    feed(live, 30)
    live.apply("event", messages.event(1, "end", "Dog", 4.0, 8.0, 0.9))
    live.apply("event", messages.event(2, "start", "Siren", 20.0, 25.0, 0.8))
    live.apply("event", messages.event(3, "start", "Music", 26.0, 28.0, 0.6))
    live.apply("event", messages.event(3, "end", "Music", 26.0, 28.0, 0.6, cancelled=True))
    w = window(live, span_seconds=30)
    w.redraw()
    image = grab(w)
    assert w.lanes.lanes == ["Dog", "Siren"]  # top lane first; Music was cancelled
    assert image.colour(w.lanes, 6.0, 1.5).rgb() == class_colour((1,)).rgb()  # top lane (y in [1, 2))
    siren, music = class_colour((2,)).rgb(), class_colour((3,)).rgb()
    assert any(c.rgb() == siren for c in image.row(w.lanes, 0.5, 20.5, 24.5)[1])  # open: hatched in its colour
    assert not any(c.rgb() == siren for c in image.row(w.lanes, 1.5, 20.5, 24.5)[1])
    assert not any(c.rgb() == music for c in image.row(w.lanes, 0.5, 26.2, 27.8)[1])


def test_heatmap_shows_the_top_classes_of_the_span(window, grab, feed):
    live = LiveData()
    feed(live, 30, high={2: (5.0, 10.0, 0.9), 1: (12.0, 14.0, 0.8)})
    w = window(live, span_seconds=30, top_n=2)
    w.redraw()
    image = grab(w)
    assert w.heatmap.row_axis._names == ["Dog", "Siren"]  # bottom row first: Siren (higher peak) on top
    assert brightness(image.colour(w.heatmap, 7.0, 1.5)) > brightness(image.colour(w.heatmap, 2.0, 1.5)) + 150
    assert brightness(image.colour(w.heatmap, 13.0, 0.5)) > brightness(image.colour(w.heatmap, 7.0, 0.5)) + 150
    w.filter_box.setText("dog, music")
    w.redraw()
    assert w.heatmap.row_axis._names == ["Music", "Dog"]


def test_status_bar_shows_source_latency_and_counters(window, grab, messages):
    live = LiveData()
    counters = {
        "samples": 1,
        "windows": 9,
        "skipped_windows": 5,
        "failed_windows": 6,
        "overruns": 3,
        "input_overflows": 4,
        "nonfinite_samples": 0,
        "reconnects": 0,
        "events": 2,
    }
    live.apply(
        "status",
        messages.status(
            counters=counters,
            dropped={"event": 0, "scores": 2, "status": 0, "mel": 1},
            latency={"hop_p50": 0.25, "hop_p95": 0.5, "event_p50": 1, "event_p95": 2},
        ),
    )
    w = window(live)
    w.redraw()
    bar = w.status_bar
    assert bar.counters.text() == "drops 4 / skips 11 / lost msgs 3"
    assert "overruns 3" in bar.counters.toolTip()
    assert bar.latency.text() == "latency p50/p95 250 ms/500 ms"
    assert bar.source.text() == "tone.wav (running)"
    assert bar.backend.text() == "torch/cpu" and bar.hop.text() == "hop 1 s"
    assert bar.level.value() == -20
    image = grab(w)
    label = bar.counters
    origin = label.mapTo(w, label.rect().topLeft())
    text_pixels = sum(
        brightness(image.image.pixelColor(origin.x() + x, origin.y() + y)) < 300
        for x in range(label.width())
        for y in range(label.height())
    )
    assert label.isVisible() and text_pixels > 50  # the counters are drawn, not just set


def test_pause_freezes_the_view_while_data_keeps_arriving(window, messages, qapp, feed):
    live = LiveData()
    feed(live, 20)
    w = window(live, span_seconds=30)
    w.redraw()
    qapp.processEvents()
    before = w.plots.grab().toImage()
    QTest.keyClick(w, Qt.Key.Key_Space)
    assert w.paused
    live.apply("event", messages.event(1, "end", "Dog", 15.0, 18.0, 0.9))
    feed(live, 25)
    w.redraw()
    qapp.processEvents()
    assert w.plots.grab().toImage() == before
    QTest.keyClick(w, Qt.Key.Key_Space)
    assert not w.paused
    w.redraw()
    qapp.processEvents()
    assert w.plots.grab().toImage() != before
    assert w.lanes.lanes == ["Dog"]


def test_save_png_and_export_events(window, messages, tmp_path, qapp, feed):
    live = LiveData()
    feed(live, 20)
    live.apply("event", messages.event(1, "end", "Dog", 2.0, 3.5, 0.8))
    live.apply("event", messages.event(2, "end", "Siren", 5.0, 6.0, 0.7, cancelled=True))
    live.apply("event", messages.event(3, "start", "Music", 8.0, 9.0, 0.6))
    w = window(live)
    w.redraw()
    qapp.processEvents()
    assert w.save_png(tmp_path / "w.png")
    assert (tmp_path / "w.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert w.export_events(tmp_path / "e.jsonl") == 1
    lines = (tmp_path / "e.jsonl").read_text().splitlines()
    assert [json.loads(line)["label"] for line in lines] == ["Dog"]
    w.export_events(tmp_path / "e.tsv")
    assert (tmp_path / "e.tsv").read_text().splitlines() == [
        "filename\tonset\toffset\tevent_label",
        f"{messages.stream}\t2.0\t3.5\tDog",
    ]


def test_threshold_box_applies_locally_and_is_read_only_remotely(window, messages):
    live = LiveData()
    live.apply("status", messages.status(thresholds={"Dog": [0.5, 0.4], "Siren": [0.3, 0.3]}))
    applied = []
    local = window(live, set_threshold=lambda target, value: applied.append((target, value)))
    local.redraw()
    local.target_box.setCurrentText("Siren")
    assert local.threshold_box.value() == pytest.approx(0.3)
    local.threshold_box.setValue(0.65)
    local.threshold_box.editingFinished.emit()
    assert applied == [("Siren", pytest.approx(0.65))]
    remote = window(live)
    remote.redraw()
    remote.target_box.setCurrentText("Dog")
    assert remote.threshold_box.isReadOnly() and remote.threshold_box.value() == pytest.approx(0.5)


def test_ctrl_q_closes_the_window(window):
    w = window(LiveData())
    QTest.keyClick(w, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
    assert not w.isVisible()


def test_every_row_name_is_drawn_even_when_too_long_for_the_axis(window, grab, messages):
    names = [f"WM{i} Wind instrument, woodwind instrument" for i in range(10)]
    live = LiveData()
    clipwise = np.linspace(0.9, 0.45, 10)
    live.apply("scores", messages.scores(0, np.tile(clipwise, (20, 1)), names, 0, clipwise=clipwise))
    w = window(live)
    w.redraw()
    image = grab(w)
    for row in range(10):
        x, y = image.point(w.topk, 0.0, row + 0.5)
        text = [image.image.pixelColor(px, y + dy) for px in range(x - 120, x - 10) for dy in (-3, 0, 3)]
        assert sum(brightness(c) > 300 for c in text) > 5, f"row {row} has no name drawn"
