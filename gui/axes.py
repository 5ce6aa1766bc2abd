"""Axes shared by the time-aligned plots: stream seconds below, wall clock above, labelled rows."""

import time

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontMetrics

LEFT_AXIS_WIDTH = 170  # pixels; every time-aligned plot uses it so their x axes line up
NAME_MARGIN = 20  # pixels of the axis left to its tick marks and padding


class WallClockAxis(pg.AxisItem):
    """A time axis that labels stream seconds with the wall-clock time they were captured."""

    def __init__(self, orientation: str = "top"):
        super().__init__(orientation)
        self.wall_offset: float | None = None  # wall time (Unix seconds) minus stream time

    def set_wall_offset(self, offset: float | None) -> None:
        if offset != self.wall_offset:
            self.wall_offset = offset
            self.picture = None  # redraw the labels
            self.update()

    def tickStrings(self, values, scale, spacing):
        if self.wall_offset is None:
            return ["" for _ in values]
        return [time.strftime("%H:%M:%S", time.localtime(value + self.wall_offset)) for value in values]


class RowAxis(pg.AxisItem):
    """A left axis that names image rows: row i (centred at y = i + 0.5) gets names[i]."""

    def __init__(self):
        super().__init__("left")
        self.setWidth(LEFT_AXIS_WIDTH)
        self.setStyle(tickFont=QFont())
        self._metrics = QFontMetrics(QFont())
        self._names: list[str] = []
        self.setTicks([[], []])

    def set_names(self, names: list[str]) -> None:
        if names != self._names:
            self._names = list(names)
            fit = LEFT_AXIS_WIDTH - NAME_MARGIN  # longer names are shortened to fit, ending in "…"
            self.setTicks([[(i + 0.5, self._metrics.elidedText(name, Qt.TextElideMode.ElideRight, fit))
                            for i, name in enumerate(self._names)], []])
