"""The scrolling log-mel spectrogram: a stretch of a FrameHistory (the newest seconds, or where a paused
view was moved) drawn as one image."""

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from htsat_live.gui.axes import LEFT_AXIS_WIDTH, TimeAxis, WallClockAxis
from htsat_live.gui.history import FrameHistory

DYNAMIC_RANGE_DB = 80.0  # the colour scale spans this many dB below the loudest recent bin
LEVEL_UPDATE_FRAMES = 100  # re-estimate the colour scale after this many new frames


class SpectrogramPlot(pg.PlotItem):
    def __init__(self):
        self.wall_axis = WallClockAxis("top")
        self.time_axis = TimeAxis("bottom")
        super().__init__(axisItems={"top": self.wall_axis, "bottom": self.time_axis})
        self.showAxis("top")
        self.getAxis("left").setWidth(LEFT_AXIS_WIDTH)
        self.setLabel("left", "mel bin")
        self.setMouseEnabled(x=False, y=False)
        self.setYRange(0, 64, padding=0.0)
        self.hideButtons()
        self.image = pg.ImageItem(axisOrder="col-major")  # image[x = frame, y = mel bin]
        self.image.setLookupTable(pg.colormap.get("inferno").getLookupTable(nPts=256))
        self.addItem(self.image)
        self.levels = (-DYNAMIC_RANGE_DB, 0.0)
        self._levels_at = None  # history end when the colour scale was last estimated

    def refresh(self, history: FrameHistory | None, left: float, right: float) -> None:
        """Draw `history` ([L, n_mels] dB) from stream time `left` to `right`."""
        self.setXRange(left, right, padding=0.0)
        for axis in (self.time_axis, self.wall_axis):
            axis.set_span(right - left)
        rows = np.zeros((0, 0))
        if history is not None:  # column j is centred on j * frame_seconds: the one under each edge too
            seconds = history.frame_seconds
            first, rows = history.frames(math.floor(left / seconds), math.ceil(right / seconds) + 1)  # [n, n_mels]
        self.image.setVisible(len(rows) > 0)
        if len(rows) == 0:
            return
        if self._levels_at is None or abs(history.end - self._levels_at) >= LEVEL_UPDATE_FRAMES:
            self._estimate_levels(rows, history.end)
        self.image.setImage(rows, autoLevels=False, levels=self.levels)
        self.image.setRect(QRectF((first - 0.5) * seconds, 0.0, len(rows) * seconds, history.width))
        self.setYRange(0, history.width, padding=0.0)

    def _estimate_levels(self, rows: np.ndarray, end: int) -> None:
        top = float(np.max(rows[::4]))  # a strided sample is enough to place the scale
        self.levels = (top - DYNAMIC_RANGE_DB, top)
        self._levels_at = end
