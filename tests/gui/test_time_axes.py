"""The time axes as the view scrolls: ticks keep one spacing, and the plots are drawn from their very
left edge once the span is full (no black strip while the view trails the newest data)."""

import time

import numpy as np
import pytest

from htsat_live.gui.live_data import LiveData


def scroll_to(w, behind: float) -> float:
    """Put the view's right edge `behind` seconds behind the newest data (between two messages the
    edge trails the data by up to one hop), redraw, and return the stream time at the edge."""
    w.live.advanced_at = time.monotonic() - (w.live.status["hop"] - behind)
    w.redraw(force=True)
    return w.display_now()[0]


def tick_marks(image, plot) -> tuple[list[float], list[float]]:
    """Pixel x of the major (bright) and minor (dim) tick marks on `plot`'s time axis, read on a black
    background: they rise from the axis line into the plot. A mark between two columns lights both."""
    (left, bottom), (right, _) = (image.point(plot, x, 0.0) for x in plot.viewRange()[0])
    axis_line = max(
        range(bottom - 2, bottom + 3),  # the brightest row near data height 0
        key=lambda y: sum(image.image.pixelColor(x, y).lightness() for x in range(left, right)),
    )
    levels = {x: image.image.pixelColor(x, axis_line - 3).lightness() for x in range(left + 2, right - 1)}
    marks, run = [], []
    for x in sorted(levels):
        if levels[x] > 40:
            run.append(x)
        if run and (levels[x] <= 40 or x == right - 2):
            marks.append((sum(run) / len(run), max(levels[c] for c in run)))
            run = []
    return [x for x, level in marks if level > 120], [x for x, level in marks if level <= 120]


@pytest.mark.parametrize("span, major_seconds, minor_seconds", [(10, 1, 0.2), (30, 5, 1), (60, 5, 1)])
def test_tick_spacing_stays_fixed_while_the_view_scrolls(
    window, grab, feed, messages, span, major_seconds, minor_seconds
):
    live = LiveData()
    feed(live, 75)
    live.apply("status", messages.status(hop=1.0))
    w = window(live, span_seconds=span)
    for behind in (0.0, 0.13, 0.37, 0.5, 0.71, 0.94):
        now = scroll_to(w, behind)
        image = grab(w)
        for plot in (w.spectrogram, w.lanes):  # the heatmap's cells hide its minor ticks; its axis is the same
            major, minor = tick_marks(image, plot)
            pixels_per_second = (image.point(plot, now, 0.0)[0] - image.point(plot, now - span, 0.0)[0]) / span
            assert len(major) >= span / major_seconds - 1
            assert all(abs(b - a - major_seconds * pixels_per_second) <= 1.5 for a, b in zip(major, major[1:]))
            # the major ticks sit on whole multiples of their spacing in stream time
            first = now - span + (major[0] - image.point(plot, now - span, 0.0)[0]) / pixels_per_second
            assert abs(first / major_seconds - round(first / major_seconds)) < 0.03
            # minor ticks between the major ones, one minor spacing apart
            assert all(
                abs(b - a - minor_seconds * pixels_per_second) <= 1.5
                for a, b in zip(minor, minor[1:])
                if b - a < 1.5 * minor_seconds * pixels_per_second
            )
            assert len(minor) >= (span / minor_seconds - span / major_seconds) * 0.9


def test_no_black_strip_at_the_left_edge_once_the_span_is_full(window, grab, feed, messages):
    live = LiveData()
    for second in range(70):
        assert live.apply("mel", messages.mel(second * 100, np.full((100, 64), -20.0)))
    feed(live, 70)
    live.apply("status", messages.status(hop=1.0))
    w = window(live, span_seconds=60)
    now = scroll_to(w, 1.0)  # the edge a whole hop behind the newest data: the widest strip there could be
    image = grab(w)
    for plot in (w.spectrogram, w.heatmap):
        left, row = image.row(plot, 0.5, now - 60, now - 58)
        assert all(c.lightness() > 20 for c in row[1:]), f"{type(plot).__name__}: dark pixels at the left edge"
