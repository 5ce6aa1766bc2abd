"""A horizontal bar chart of the current clipwise scores of the top k classes."""

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg

from htsat_live.gui.axes import RowAxis


class TopKPlot(pg.PlotItem):
    def __init__(self, k: int):
        self.k = k
        self.row_axis = RowAxis()
        super().__init__(axisItems={"left": self.row_axis})
        self.setTitle(f"top {k} clipwise")
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.bars = pg.BarGraphItem(x0=np.zeros(0), y0=np.zeros(0), width=np.zeros(0), height=0.8,
                                    brush=pg.mkBrush(90, 170, 250))
        self.addItem(self.bars)
        self.setXRange(0.0, 1.0, padding=0.0)
        self.setYRange(0, k, padding=0.0)
        self._shown = np.zeros(0, dtype=np.float32)  # the scores drawn now ([C])

    def refresh(self, clipwise: np.ndarray, name: Callable[[int], str]) -> None:
        """Show the k best of `clipwise` ([C] scores in [0, 1]), the best at the top, named by `name(class)`."""
        if np.array_equal(clipwise, self._shown):
            return
        self._shown = clipwise.copy()
        best = np.argsort(clipwise)[::-1][:self.k]
        rows = np.arange(len(best))[::-1]  # best in the top row
        self.bars.setOpts(x0=np.zeros(len(best)), y0=rows + 0.1, width=clipwise[best], height=0.8)
        self.row_axis.set_names([name(i) for i in best][::-1])
        self.setTitle(f"top {len(best)} clipwise")
        self.setYRange(0, max(1, len(best)), padding=0.0)
