"""The status bar: where the audio comes from, how loud it is, how fast and how well the pipeline keeps up,
what the last action did, and how the link to the pipeline is doing.

Every field is an `ElidedLabel`, which shortens its text to the room it gets: a long source path or
message never widens the window. The source and the notice (what the last action did) yield first."""

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QLabel, QProgressBar, QSizePolicy, QStatusBar

LEVEL_FLOOR_DB = -60.0  # the level meter's empty mark (dBFS)
NOTICE_MS = 15000  # how long the result of an action (a saved PNG, exported events) stays shown
MIN_LABEL_CHARS = 4  # a field never gets narrower than about this many characters
# link state (from the receiver) -> text colour (None: the usual one) and bold
CONNECTION_LOOKS = {
    "receiving": (None, False),
    "waiting": ("#a07000", False),
    "ended": ("#3070b0", True),
    "lost": ("#d04040", True),
}


class ElidedLabel(QLabel):
    """A one-line label that shortens its text with "…" when it gets less room than the text needs,
    instead of asking for more; `text()` stays the whole text."""

    def __init__(self, text: str = "", elide: Qt.TextElideMode = Qt.TextElideMode.ElideRight):
        super().__init__(text)
        self.elide = elide

    def minimumSizeHint(self) -> QSize:
        return QSize(self.fontMetrics().averageCharWidth() * MIN_LABEL_CHARS, super().minimumSizeHint().height())

    def paintEvent(self, event) -> None:
        room = self.contentsRect()
        painter = QPainter(self)
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(
            room,
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            self.fontMetrics().elidedText(self.text(), self.elide, room.width()),
        )
        painter.end()


class YieldingLabel(ElidedLabel):
    """An ElidedLabel for long texts (a path, a message): it asks for no room of its own, takes what the
    other fields leave up to its text's width, and is the first to be shortened."""

    def __init__(self, text: str = "", elide: Qt.TextElideMode = Qt.TextElideMode.ElideMiddle):
        super().__init__(text, elide)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._fit_width()

    def setText(self, text: str) -> None:
        super().setText(text)
        self._fit_width()

    def _fit_width(self) -> None:
        margins = self.contentsMargins()
        self.setMaximumWidth(self.fontMetrics().horizontalAdvance(self.text()) + margins.left() + margins.right() + 2)


class StatusBar(QStatusBar):
    def __init__(self):
        super().__init__()
        self.source = YieldingLabel("source: -")
        self.rate = ElidedLabel("- Hz")
        self.level = QProgressBar()  # a bare meter; its figure is written beside it, not over it
        self.level.setRange(int(LEVEL_FLOOR_DB), 0)
        self.level.setTextVisible(False)
        self.level.setFixedSize(60, 10)
        self.level_text = ElidedLabel("- dBFS")
        self.backend = ElidedLabel("backend: -")
        self.hop = ElidedLabel("hop: -")
        self.latency = ElidedLabel("latency p50/p95: -")
        self.counters = ElidedLabel("drops 0 / skips 0")
        self.notice = YieldingLabel("")
        self.connection = ElidedLabel("")
        self.addWidget(self.source, 1)
        for widget in (self.rate, self.level, self.level_text, self.backend, self.hop, self.latency, self.counters):
            self.addWidget(widget)
        self.addPermanentWidget(self.notice, 2)  # a fresh notice matters more than the rest of a long path
        self.addPermanentWidget(self.connection)
        self._notice_timer = QTimer(self)
        self._notice_timer.setSingleShot(True)
        self._notice_timer.timeout.connect(self._clear_notice)

    def show_status(self, status: dict, missed_messages: int) -> None:
        """Fill the fields from the newest `status` message (docs/schema.md) and the count of messages
        this viewer lost in transit."""
        state = status.get("source_state", "-")
        self.source.setText(f"{status.get('source', '-')} ({state})")
        self.source.setToolTip("\n".join(t for t in (status.get("source"), status.get("error")) if t))
        rate, native = status.get("sample_rate", "-"), status.get("input_rate")
        self.rate.setText(f"{native} → {rate} Hz" if native and native != rate else f"{rate} Hz")
        level = status.get("level_dbfs")
        if isinstance(level, (int, float)):
            self.level.setValue(int(max(LEVEL_FLOOR_DB, min(0.0, level))))
            self.level_text.setText(f"{level:.1f} dBFS")
        self.backend.setText(f"{status.get('backend', '-')}/{status.get('device', '-')}")
        hop = status.get("hop")
        self.hop.setText(f"hop {hop:g} s" if isinstance(hop, (int, float)) else "hop -")
        latency = status.get("latency", {})
        self.latency.setText(f"latency p50/p95 {_seconds(latency.get('hop_p50'))}/{_seconds(latency.get('hop_p95'))}")
        counters, dropped = status.get("counters", {}), status.get("dropped", {})
        drops = counters.get("input_overflows", 0)  # audio the capture lost
        skips = counters.get("skipped_windows", 0) + counters.get("failed_windows", 0)  # windows not scored
        lost = sum(dropped.values()) + missed_messages  # messages that did not reach this view
        gated = counters.get("gated_windows", 0)  # below the level gate (windows.gate_dbfs): not run, scored 0
        self.counters.setText(
            f"drops {drops} / skips {skips} / lost msgs {lost}" + (f" / gated {gated}" if gated else "")
        )
        self.counters.setToolTip(", ".join(f"{key} {value}" for key, value in counters.items()))

    def show_connection(self, text: str, state: str) -> None:
        """Show the link's description; `state` (a key of CONNECTION_LOOKS) sets how it looks."""
        colour, bold = CONNECTION_LOOKS[state]
        palette = self.palette()  # the status bar's own colours, unless the state asks for others
        if colour is not None:
            palette.setColor(self.connection.foregroundRole(), QColor(colour))
        font = self.font()
        font.setBold(bold)
        self.connection.setPalette(palette)
        self.connection.setFont(font)
        self.connection.setText(text)
        self.connection.setToolTip(text)

    def show_notice(self, text: str) -> None:
        """Say what an action did (for NOTICE_MS), beside the other fields rather than over them."""
        self.notice.setText(text)
        self.notice.setToolTip(text)
        self._notice_timer.start(NOTICE_MS)

    def _clear_notice(self) -> None:
        self.notice.setText("")
        self.notice.setToolTip("")


def _seconds(value) -> str:
    return f"{value * 1000:.0f} ms" if isinstance(value, (int, float)) else "-"
