"""The scrolling log-mel spectrogram: the newest seconds of a FrameHistory drawn as one image."""

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from htsat_live.gui.axes import LEFT_AXIS_WIDTH, WallClockAxis
from htsat_live.gui.history import FrameHistory

DYNAMIC_RANGE_DB = 80.0  # the colour scale spans this many dB below the loudest recent bin
LEVEL_UPDATE_FRAMES = 100  # re-estimate the colour scale after this many new frames


class SpectrogramPlot(pg.PlotItem):
    def __init__(self):
        self.wall_axis = WallClockAxis("top")
        super().__init__(axisItems={"top": self.wall_axis})
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

    def refresh(self, history: FrameHistory | None, now: float, span_seconds: float) -> None:
        """Draw `history` ([L, n_mels] dB) over the `span_seconds` before stream time `now`."""
        self.setXRange(now - span_seconds, now, padding=0.0)
        frames = 0 if history is None else min(history.length, history.end,
                                               int(round(span_seconds / history.frame_seconds)))
        self.image.setVisible(frames > 0)
        if frames == 0:
            return
        rows = history.view()[history.length - frames:]  # [frames, n_mels], a view
        if self._levels_at is None or abs(history.end - self._levels_at) >= LEVEL_UPDATE_FRAMES:
            self._estimate_levels(rows, history.end)
        self.image.setImage(rows, autoLevels=False, levels=self.levels)
        end = history.end_seconds() - history.frame_seconds / 2  # column j is centred on j * frame_seconds
        self.image.setRect(QRectF(end - frames * history.frame_seconds, 0.0,
                                  frames * history.frame_seconds, history.width))
        self.setYRange(0, history.width, padding=0.0)

    def _estimate_levels(self, rows: np.ndarray, end: int) -> None:
        top = float(np.max(rows[::4]))  # a strided sample is enough to place the scale
        self.levels = (top - DYNAMIC_RANGE_DB, top)
        self._levels_at = end
