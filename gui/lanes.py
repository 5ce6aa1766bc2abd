"""Event lanes: one lane per label with events in view, one bar per event from onset to offset,
coloured per label; hovering a bar names its label and peak score."""

import pyqtgraph as pg
from PySide6.QtWidgets import QGraphicsRectItem

from htsat_live.gui.axes import RowAxis
from htsat_live.gui.live_data import EventBar

BAR_HEIGHT = 0.7  # of a lane
MAX_LANES = 16  # labels shown at once: those active most recently
COLOURS = 16  # distinct label colours before they repeat
HUE_STEP = 7  # coprime with COLOURS: every hue comes once in COLOURS labels


class LanesPlot(pg.PlotItem):
    def __init__(self):
        self.row_axis = RowAxis()
        super().__init__(axisItems={"left": self.row_axis})
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setLabel("bottom", "stream time", units="s")
        self._bars: dict[int, tuple[QGraphicsRectItem, tuple]] = {}  # event id -> (its bar, what it shows)
        self.lanes: list[str] = []  # label of each lane, top lane first
        self._colours: dict[str, pg.QtGui.QColor] = {}  # label -> its colour, in order of first appearance

    def colour(self, label: str) -> pg.QtGui.QColor:
        """The label's colour, kept for the session: labels seen one after another get hues far apart
        (steps of HUE_STEP of COLOURS hues)."""
        if label not in self._colours:
            self._colours[label] = pg.intColor(len(self._colours) * HUE_STEP % COLOURS, hues=COLOURS, minValue=230)
        return self._colours[label]

    def refresh(self, events: list[EventBar], now: float, span_seconds: float) -> None:
        """Draw the events that overlap the last `span_seconds` before `now`, in the lanes of the
        MAX_LANES labels active most recently (alphabetical, top down)."""
        start = now - span_seconds
        latest: dict[str, float] = {}
        for event in events:
            if event.offset >= start:
                latest[event.label] = max(latest.get(event.label, start), event.offset)
        self.lanes = sorted(sorted(latest, key=lambda label: -latest[label])[:MAX_LANES])
        lane_of = {label: len(self.lanes) - 1 - i for i, label in enumerate(self.lanes)}
        shown = [e for e in events if e.offset >= start and e.label in lane_of]
        keep = {e.event_id for e in shown}
        for key in [key for key in self._bars if key not in keep]:
            self.removeItem(self._bars.pop(key)[0])
        for event in shown:
            drawn = (event.label, lane_of[event.label], event.onset, event.offset, event.peak, event.open)
            bar, before = self._bars.get(event.event_id, (None, None))
            if drawn == before:
                continue
            if bar is None:
                bar = QGraphicsRectItem()
                bar.setPen(pg.mkPen(None))
                self.addItem(bar)
            if before is None or before[0] != event.label:
                bar.setBrush(pg.mkBrush(self.colour(event.label)))
            bar.setRect(event.onset, drawn[1] + (1 - BAR_HEIGHT) / 2, event.offset - event.onset, BAR_HEIGHT)
            state = "open" if event.open else "ended"
            bar.setToolTip(f"{event.label}: peak {event.peak:.2f}\n{event.onset:.2f}-{event.offset:.2f} s ({state})")
            self._bars[event.event_id] = (bar, drawn)
        self.row_axis.set_names(list(reversed(self.lanes)))
        self.setXRange(start, now, padding=0.0)
        self.setYRange(0, max(1, len(self.lanes)), padding=0.0)
