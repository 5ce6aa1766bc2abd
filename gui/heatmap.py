"""The per-class timeline heatmap: the top classes of the stitched scores, newest seconds, on the
spectrogram's time axis, with the provisional (not yet final) region shaded."""

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from htsat_live.gui.axes import RowAxis
from htsat_live.gui.history import FrameHistory

PROVISIONAL_BRUSH = (80, 160, 255, 70)


class HeatmapPlot(pg.PlotItem):
    def __init__(self):
        self.row_axis = RowAxis()
        super().__init__(axisItems={"left": self.row_axis})
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.image = pg.ImageItem(axisOrder="col-major")  # image[x = frame, y = row]
        self.image.setLookupTable(pg.colormap.get("viridis").getLookupTable(nPts=256))
        self.addItem(self.image)
        self.provisional = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(*PROVISIONAL_BRUSH),
                                               pen=pg.mkPen(None))
        self.provisional.setZValue(10)
        self.addItem(self.provisional)
        self._rows = np.empty((0, 0), dtype=np.float32)  # [frames, N], reused while its shape holds

    def refresh(self, history: FrameHistory | None, classes: list[int], names: list[str], final_upto: float,
                now: float, span_seconds: float) -> None:
        """Draw rows `classes` (best first, shown top down) of `history` ([L, C] scores in [0, 1])
        over the `span_seconds` before stream time `now`."""
        self.setXRange(now - span_seconds, now, padding=0.0)
        frames = 0 if history is None else min(history.length, history.end,
                                               int(round(span_seconds / history.frame_seconds)))
        shown = bool(classes) and frames > 0
        self.image.setVisible(shown)
        self.provisional.setVisible(shown)
        self.row_axis.set_names(list(reversed(names)) if shown else [])
        self.setYRange(0, max(1, len(classes)), padding=0.0)
        if not shown:
            return
        if self._rows.shape != (frames, len(classes)):
            self._rows = np.empty((frames, len(classes)), dtype=np.float32)
        recent = history.view()[history.length - frames:]  # [frames, C], a view
        np.take(recent, classes[::-1], axis=1, out=self._rows)  # top class in the top row
        self.image.setImage(self._rows, autoLevels=False, levels=(0.0, 1.0))
        end = history.end_seconds()
        start = end - frames * history.frame_seconds
        self.image.setRect(QRectF(start, 0.0, end - start, len(classes)))
        self.provisional.setRegion((max(final_upto, start), max(final_upto, end)))
