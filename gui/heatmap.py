"""The per-class timeline heatmap: chosen classes of the stitched scores on the spectrogram's time
axis, with a colour scale beside it. Scores after `final_upto` may still be
revised: a line marks the boundary and thin hatching covers them, leaving the cells' colours
untouched between its lines."""

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor

from htsat_live.gui.axes import RowAxis, TimeAxis
from htsat_live.gui.history import FrameHistory

COLOUR_MAP = "viridis"
PROVISIONAL_COLOUR = QColor(255, 255, 255, 170)  # boundary line and hatching
COLOUR_BAR_WIDTH = 14  # pixels


class HeatmapPlot(pg.PlotItem):
    def __init__(self):
        self.row_axis = RowAxis()
        self.time_axis = TimeAxis("bottom")
        super().__init__(axisItems={"left": self.row_axis, "bottom": self.time_axis})
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        colour_map = pg.colormap.get(COLOUR_MAP)
        self.image = pg.ImageItem(axisOrder="col-major")  # image[x = frame, y = row]
        self.image.setLookupTable(colour_map.getLookupTable(nPts=256))
        self.addItem(self.image)
        # the colour scale: the window places it beside the plot
        self.colour_bar = pg.ColorBarItem(
            values=(0.0, 1.0), colorMap=colour_map, interactive=False, width=COLOUR_BAR_WIDTH
        )
        self.colour_bar.axis.setTicks([[(0.0, "0"), (0.5, "0.5"), (1.0, "1")], []])
        self.colour_bar.axis.setLabel("score")
        self.provisional = pg.LinearRegionItem(
            movable=False, pen=pg.mkPen(None), brush=QBrush(PROVISIONAL_COLOUR, Qt.BrushStyle.BDiagPattern)
        )
        self.final_line = pg.InfiniteLine(
            angle=90, movable=False, pen=pg.mkPen(PROVISIONAL_COLOUR, width=2, style=Qt.PenStyle.DashLine)
        )
        for item in (self.provisional, self.final_line):
            item.setZValue(10)
            self.addItem(item)
        self._rows = np.empty((0, 0), dtype=np.float32)  # [frames, N], reused while its shape holds

    def refresh(
        self,
        history: FrameHistory | None,
        classes: list[int],
        names: list[str],
        final_upto: float,
        left: float,
        right: float,
    ) -> None:
        """Draw rows `classes` (shown top down in the order given) of `history` ([L, C] scores in [0, 1])
        from stream time `left` to `right`."""
        self.setXRange(left, right, padding=0.0)
        self.time_axis.set_span(right - left)
        recent = np.zeros((0, 0))
        if history is not None:
            seconds = history.frame_seconds
            first, recent = history.frames(math.floor(left / seconds), math.ceil(right / seconds))  # [frames, C]
        shown = bool(classes) and len(recent) > 0
        for item in (self.image, self.provisional, self.final_line):
            item.setVisible(shown)
        self.row_axis.set_names(list(reversed(names)) if shown else [])
        self.setYRange(0, max(1, len(classes)), padding=0.0)
        if not shown:
            return
        if self._rows.shape != (len(recent), len(classes)):
            self._rows = np.empty((len(recent), len(classes)), dtype=np.float32)
        np.take(recent, classes[::-1], axis=1, out=self._rows)  # first class in the top row
        self.image.setImage(self._rows, autoLevels=False, levels=(0.0, 1.0))
        start, end = first * seconds, (first + len(recent)) * seconds
        self.image.setRect(QRectF(start, 0.0, end - start, len(classes)))
        boundary = min(max(final_upto, start), end)
        self.provisional.setRegion((boundary, end))
        self.final_line.setValue(boundary)
