"""Event lanes: one lane per label with events in view, one bar per event from onset to offset in the
label's colour: solid once the event is confirmed, hatched with an outline while it is provisional
(revised scores may still move or cancel it). Hovering a bar names its label and peak score;
clicking one selects it (outlined in white) for listening."""

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import QGraphicsRectItem

from htsat_live.gui.axes import RowAxis, TimeAxis
from htsat_live.gui.classes import ClassOrder
from htsat_live.gui.colours import class_colour
from htsat_live.gui.live_data import EventBar

BAR_HEIGHT = 0.7  # of a lane
MAX_LANES = 16  # labels shown at once: those active most recently
SELECTED_PEN = pg.mkPen("w", width=2)


class LanesPlot(pg.PlotItem):
    def __init__(self):
        self.row_axis = RowAxis()
        self.time_axis = TimeAxis("bottom")
        super().__init__(axisItems={"left": self.row_axis, "bottom": self.time_axis})
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.setLabel("bottom", "stream time", units="s")
        # event id -> (its bar, what the bar shows, the event)
        self._bars: dict[int, tuple[QGraphicsRectItem, tuple, EventBar]] = {}
        self.lanes: list[str] = []  # label of each lane, top lane first
        self.selected: EventBar | None = None
        self.hint = ""  # a line added to each bar's tool tip (how to listen, or why one cannot)

    def refresh(self, events: list[EventBar], left: float, right: float, order: ClassOrder) -> None:
        """Draw the events that overlap stream times `left` to `right`, in the lanes of the MAX_LANES
        labels that match the filter of `order` and were active last, top down in that order."""
        in_view = [e for e in events if e.offset >= left and e.onset <= right]
        latest: dict[str, EventBar] = {}  # label -> its event that ended last
        for event in in_view:
            if order.matches(event.label):
                if event.label not in latest or event.offset > latest[event.label].offset:
                    latest[event.label] = event
        recent = sorted(latest.values(), key=lambda e: -e.offset)[:MAX_LANES]
        self.lanes = [e.label for e in sorted(recent, key=lambda e: order.key(e.label, e.classes))]
        lane_of = {label: len(self.lanes) - 1 - i for i, label in enumerate(self.lanes)}
        shown = [e for e in in_view if e.label in lane_of]
        keep = {e.event_id for e in shown}
        for key in [key for key in self._bars if key not in keep]:
            self.removeItem(self._bars.pop(key)[0])
        selected = self.selected.event_id if self.selected is not None else None
        for event in shown:
            drawn = (
                event.label,
                lane_of[event.label],
                event.onset,
                event.offset,
                event.peak,
                event.open,
                event.confirmed,
                event.event_id == selected,
                self.hint,
            )
            bar, before, _ = self._bars.get(event.event_id, (None, None, None))
            if drawn == before:
                continue
            if bar is None:
                bar = QGraphicsRectItem()
                self.addItem(bar)
            if before is None or before[0] != event.label or before[6:8] != drawn[6:8]:
                self._paint(bar, event, event.event_id == selected)
            bar.setRect(event.onset, drawn[1] + (1 - BAR_HEIGHT) / 2, event.offset - event.onset, BAR_HEIGHT)
            state = ("open" if event.open else "ended") + ("" if event.confirmed else ", provisional")
            bar.setToolTip(
                f"{event.label}: peak {event.peak:.2f}\n{event.onset:.2f}-{event.offset:.2f} s ({state})"
                + (f"\n{self.hint}" if self.hint else "")
            )
            self._bars[event.event_id] = (bar, drawn, event)
        self.row_axis.set_names(list(reversed(self.lanes)))
        self.setXRange(left, right, padding=0.0)
        self.time_axis.set_span(right - left)
        self.setYRange(0, max(1, len(self.lanes)), padding=0.0)

    def event_at(self, x: float, y: float) -> EventBar | None:
        """The event whose bar covers data point (x, y), if any."""
        return next((event for bar, _, event in self._bars.values() if bar.rect().contains(x, y)), None)

    def select(self, event: EventBar | None) -> None:
        """Mark `event` (shown on the next refresh), or none."""
        self.selected = event

    @staticmethod
    def _paint(bar: QGraphicsRectItem, event: EventBar, selected: bool) -> None:
        colour = class_colour(event.classes)
        if event.confirmed:
            bar.setBrush(pg.mkBrush(colour))
            bar.setPen(SELECTED_PEN if selected else pg.mkPen(None))
        else:
            bar.setBrush(QBrush(colour, Qt.BrushStyle.BDiagPattern))
            bar.setPen(SELECTED_PEN if selected else pg.mkPen(colour, width=1))  # cosmetic: one pixel at any scale
