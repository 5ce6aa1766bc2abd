"""Axes shared by the plots: time axes whose tick spacing follows only the span shown (stream seconds
below, wall clock above), and axes that name rows."""

import time

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontMetrics

LEFT_AXIS_WIDTH = 170  # pixels; every time-aligned plot uses it so their x axes line up
NAME_MARGIN = 20  # pixels of the axis left to its tick marks and padding
# (major, minor) tick spacings in seconds, finest first; a span takes the finest with few enough labels
TICK_SPACINGS = (
    (0.5, 0.1),
    (1, 0.2),
    (2, 0.5),
    (5, 1),
    (10, 2),
    (30, 5),
    (60, 10),
    (120, 30),
    (300, 60),
    (600, 120),
    (1800, 300),
)
MAX_LABELS = 12  # labelled ticks across a span at most


def tick_spacing(span_seconds: float) -> tuple[float, float]:
    """(major, minor) tick spacing for a time axis `span_seconds` wide. It depends on the span only,
    never on where the view stands, so the ticks do not change as the view scrolls."""
    for major, minor in TICK_SPACINGS:
        if span_seconds / major <= MAX_LABELS + 1e-6:  # a span of now - (now - 60) may come out a hair over 60
            return major, minor
    return TICK_SPACINGS[-1]


class TimeAxis(pg.AxisItem):
    """A stream-time axis with fixed tick spacing (`set_span`)."""

    def __init__(self, orientation: str = "bottom"):
        super().__init__(orientation)
        # labels on major ticks only: pyqtgraph would otherwise measure every minor label on every frame
        # to find that there is no room for them
        self.setStyle(maxTextLevel=0)
        self._span: float | None = None

    def set_span(self, span_seconds: float) -> None:
        if span_seconds != self._span:
            self._span = span_seconds
            self.setTickSpacing(*tick_spacing(span_seconds))


class WallClockAxis(TimeAxis):
    """A time axis over stream seconds labelled with the wall-clock time they were captured, ticks on
    whole wall-clock seconds. Its labels are wider than stream seconds, so it takes every other tick."""

    def __init__(self, orientation: str = "top"):
        super().__init__(orientation)
        self.wall_offset: float | None = None  # wall time (Unix seconds) minus stream time

    def set_span(self, span_seconds: float) -> None:
        super().set_span(2 * span_seconds)

    def set_wall_offset(self, offset: float | None) -> None:
        if offset != self.wall_offset:
            self.wall_offset = offset
            self.picture = None  # redraw the labels
            self.update()

    def tickValues(self, minVal, maxVal, size):
        if self.wall_offset is None:
            return []
        # the fixed spacing laid on wall-clock time, then moved back to stream time
        levels = super().tickValues(minVal + self.wall_offset, maxVal + self.wall_offset, size)
        return [(spacing, [value - self.wall_offset for value in values]) for spacing, values in levels]

    def tickStrings(self, values, scale, spacing):
        if self.wall_offset is None:
            return ["" for _ in values]
        return [time.strftime("%H:%M:%S", time.localtime(round(value + self.wall_offset))) for value in values]


class RowAxis(pg.AxisItem):
    """A left axis `width` pixels wide that names image rows: row i (centred at y = i + 0.5) gets
    names[i], shortened with "…" when too long."""

    def __init__(self, width: int = LEFT_AXIS_WIDTH):
        super().__init__("left")
        self.setStyle(tickFont=QFont())
        self._metrics = QFontMetrics(QFont())
        self._names: list[str] = []
        self.set_width(width)

    def set_width(self, width: int) -> None:
        if width != self.fixedWidth:
            self.setWidth(width)
            self._show_names()

    def widest(self, names: list[str]) -> int:
        """Pixels the longest of `names` takes, with the axis's own margin."""
        # one pixel more than the rounded advance: the text's true width has a fraction that elidedText counts
        return max((self._metrics.horizontalAdvance(name) + 1 for name in names), default=0) + NAME_MARGIN

    def set_names(self, names: list[str]) -> None:
        if names != self._names:
            self._names = list(names)
            self._show_names()

    def _show_names(self) -> None:
        fit = self.fixedWidth - NAME_MARGIN
        self.setTicks(
            [
                [
                    (i + 0.5, self._metrics.elidedText(name, Qt.TextElideMode.ElideRight, fit))
                    for i, name in enumerate(self._names)
                ],
                [],
            ]
        )
