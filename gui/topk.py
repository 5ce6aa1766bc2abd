"""Horizontal bars of the newest clipwise scores of up to k classes, each in its class's colour with
its value written beside it, on an axis from 0 to 1. The names take the width they need, up to a
share of the panel, so the bars keep the rest at any window size."""

import numpy as np
import pyqtgraph as pg

from htsat_live.gui.axes import RowAxis
from htsat_live.gui.colours import class_colour

BAR_HEIGHT = 0.8  # of a row
NAME_SHARE = 0.45  # most of the panel's width the names may take
MIN_NAME_WIDTH = 60  # pixels
VALUE_INSIDE = 0.8  # a value from here up is written inside its bar's end, in dark text
RIGHT_MARGIN = 14  # pixels kept free right of the plot, where the axis writes its "1"


class TopKPlot(pg.PlotItem):
    def __init__(self, k: int):
        self.k = k
        self._names: list[str] = []  # of the rows shown, top down
        self.row_axis = RowAxis(MIN_NAME_WIDTH)
        super().__init__(axisItems={"left": self.row_axis})
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setMenuEnabled(False)
        self.layout.setContentsMargins(2, 2, RIGHT_MARGIN, 2)
        self.bars = pg.BarGraphItem(x0=np.zeros(0), y0=np.zeros(0), width=np.zeros(0), height=BAR_HEIGHT)
        self.addItem(self.bars)
        self.values = [pg.TextItem() for _ in range(k)]  # the value written on row i's bar
        for text in self.values:
            self.addItem(text)
        score_axis = self.getAxis("bottom")
        score_axis.setTicks([[(0.0, "0"), (0.5, "0.5"), (1.0, "1")], [(0.25, ""), (0.75, "")]])
        score_axis.setStyle(hideOverlappingLabels=False)  # "0" and "1" sit on the axis's very ends
        self.setXRange(0.0, 1.0, padding=0.0)
        self._shown: tuple = ()  # (classes, their scores) drawn now
        self._show_title(0)

    def refresh(self, clipwise: np.ndarray, classes: list[int], names: list[str]) -> None:
        """Show the scores `clipwise[classes]` ([C] scores in [0, 1]) of `classes` (at most k),
        top down in the order given, named `names`."""
        scores = [float(clipwise[c]) for c in classes]
        if (classes, scores) == self._shown:
            return
        self._shown = (list(classes), scores)
        rows = np.arange(len(classes))[::-1]  # the first class in the top row
        self.bars.setOpts(
            x0=np.zeros(len(classes)),
            y0=rows + (1 - BAR_HEIGHT) / 2,
            width=np.asarray(scores),
            height=BAR_HEIGHT,
            brushes=[class_colour((c,)) for c in classes],
            pen=pg.mkPen(None),
        )
        for i, text in enumerate(self.values):
            text.setVisible(i < len(classes))
            if i < len(classes):
                self._write_value(text, scores[i], rows[i])
        self._names = list(names)
        self.row_axis.set_names(list(reversed(names)))
        self._fit_names()
        self._show_title(len(classes))
        self.setYRange(0, max(1, len(classes)), padding=0.0)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_names()

    def _fit_names(self) -> None:
        share = int(NAME_SHARE * self.size().width())
        self.row_axis.set_width(max(MIN_NAME_WIDTH, min(share, self.row_axis.widest(self._names))))

    def _show_title(self, count: int) -> None:
        self.setTitle(f"top {count or self.k} clipwise")

    @staticmethod
    def _write_value(text: pg.TextItem, score: float, row: int) -> None:
        inside = score >= VALUE_INSIDE
        text.setText(f"{score:.2f}", color=(20, 20, 20) if inside else (230, 230, 230))
        text.setAnchor((1.0, 0.5) if inside else (0.0, 0.5))
        text.setPos(score, row + 0.5)
