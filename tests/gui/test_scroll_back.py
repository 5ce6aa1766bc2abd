"""Scrolling back: paused, the view moves back through ten minutes and more of history (the archive),
zooms in time, and "Live" returns it to the present; checked from the window's pixels."""

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from htsat_live.gui.colours import class_colour
from htsat_live.gui.live_data import LiveData

MINUTES = 11
TONE_ROW = 20  # mel bin of the tone heard from 25 to 35 s


@pytest.fixture
def eleven_minutes(messages) -> LiveData:
    """11 minutes of stream: 25-35 s hold a tone in mel bin 20, a high Siren score and a Siren event."""
    live = LiveData()
    for second in range(MINUTES * 60):
        mel = np.full((100, 64), -80.0)
        if 25 <= second < 35:
            mel[:, TONE_ROW] = -5.0
        assert live.apply("mel", messages.mel(second * 100, mel))
    for body in messages.timeline(MINUTES * 60, high={2: (25.0, 35.0, 0.9)}):
        assert live.apply("scores", body)
    live.apply("event", messages.event(1, "end", "Siren", 25.0, 35.0, 0.9))
    live.apply("status", messages.status(hop=1.0))
    return live


def test_paused_the_view_scrolls_back_ten_minutes_zooms_and_goes_live_again(window, grab, eleven_minutes, qapp):
    live = eleven_minutes
    now = live.now
    w = window(live, span_seconds=30, top_n=2)
    w.redraw(force=True)
    QTest.keyClick(w, Qt.Key.Key_Space)
    assert w.paused and w.pause_action.text() == "Live"

    # a drag to the right over the lanes moves the view back in time, as far as the mouse went
    ((left, right),) = [w.lanes.viewRange()[0]]
    start = w.plots.mapFromScene(w.lanes.vb.mapViewToScene(QPointF(now - 20, 0.5)))
    QTest.mousePress(w.plots.viewport(), Qt.MouseButton.LeftButton, pos=start)
    for step in range(1, 11):
        QTest.mouseMove(w.plots.viewport(), start + QPoint(30 * step, 0))
    QTest.mouseRelease(w.plots.viewport(), Qt.MouseButton.LeftButton, pos=start + QPoint(300, 0))
    moved = w.lanes.viewRange()[0]
    seconds_per_pixel = (right - left) / w.lanes.vb.width()
    assert moved[0] == pytest.approx(left - 300 * seconds_per_pixel, abs=0.1 * (right - left))
    assert w.spectrogram.viewRange()[0] == pytest.approx(moved)  # one time axis for the three plots

    # ten minutes back (what dragging and scrolling further do)
    w.lanes.vb.setXRange(15.0, 45.0, padding=0.0)
    w.redraw()
    image = grab(w)
    assert now - 45.0 > 10 * 60
    bright = image.colour(w.spectrogram, 30.0, TONE_ROW + 0.5).lightness()
    assert bright > image.colour(w.spectrogram, 30.0, TONE_ROW + 10.5).lightness() + 80
    assert bright > image.colour(w.spectrogram, 20.0, TONE_ROW + 0.5).lightness() + 80
    assert w.heatmap.row_axis._names[-1] == "Siren"  # the top row
    siren_row = len(w.heatmap.row_axis._names) - 0.5
    assert (
        image.colour(w.heatmap, 30.0, siren_row).lightness() > image.colour(w.heatmap, 20.0, siren_row).lightness() + 60
    )
    assert image.colour(w.lanes, 30.0, 0.5).rgb() == class_colour((2,)).rgb()

    # zoomed in to two seconds: still drawn, edge to edge
    w.lanes.vb.setXRange(34.0, 36.0, padding=0.0)
    w.redraw()
    image = grab(w)
    assert image.colour(w.spectrogram, 34.5, TONE_ROW + 0.5).lightness() > 150
    assert image.colour(w.spectrogram, 35.5, TONE_ROW + 0.5).lightness() < 60
    assert w.lanes.time_axis._tickSpacing[0][0] < 1.0  # ticks fit the zoom

    # Live: back to the newest span
    QTest.keyClick(w, Qt.Key.Key_Space)
    w.redraw()
    assert not w.paused and w.pause_action.text() == "Pause"
    assert w.lanes.viewRange()[0] == pytest.approx([now - 30.0, now], abs=1.5)


def test_the_archive_holds_ten_minutes_in_bounded_memory(eleven_minutes):
    live = eleven_minutes
    assert live.archived_mel.start_seconds() <= live.now - 10 * 60
    assert live.archived_scores.start_seconds() <= live.now - 10 * 60
    # at 527 classes the archive of scores takes tens of megabytes (twice its frames, float32)
    frames_527 = live.archived_scores.length
    assert 2 * frames_527 * 527 * 4 < 50e6
