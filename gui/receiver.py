"""The Qt-side receiver: a timer on the GUI thread that drains a message source without waiting and
hands each message to `LiveData`. Local mode (the pipeline in this process) and remote mode (a
ZeroMQ SUB socket) are two sources of the same (topic, body) pairs."""

from typing import Protocol

from PySide6.QtCore import QObject, QTimer, Signal

from htsat_live.gui.live_data import LiveData

POLL_INTERVAL_MS = 20
MAX_MESSAGES_PER_POLL = 200  # keeps one poll short when a backlog arrives at once


class MessageSource(Protocol):
    def poll(self, limit: int) -> list[tuple[str, dict]]:
        """Up to `limit` messages that have arrived, oldest first; returns at once (maybe empty)."""

    def connection(self) -> tuple[str, bool]:
        """A short description of the link to the pipeline, and whether it is healthy."""

    def close(self) -> None:
        """Stop receiving (and stop the pipeline, for a local source)."""


class Receiver(QObject):
    """Polls `source` every POLL_INTERVAL_MS on the GUI thread; `connection_changed(text, state)` says
    in words how the link is doing, and `state` in one word: "waiting" (nothing heard yet),
    "receiving", "ended" (the pipeline reported that its source ended: nothing more will come, and
    that is no fault) or "lost" (it went quiet otherwise; a SUB socket reconnects by itself)."""

    connection_changed = Signal(str, str)

    def __init__(self, source: MessageSource, live: LiveData, parent: QObject | None = None):
        super().__init__(parent)
        self.source = source
        self.live = live
        self.reconnects = 0  # times the link came back after going quiet
        self._healthy: bool | None = None  # None until the link was first healthy
        self._shown: tuple[str, str] | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_INTERVAL_MS)
        self.timer.timeout.connect(self.poll)

    def start(self) -> None:
        self.timer.start()

    def stop(self) -> None:
        """Stop polling and close the source; safe to call twice."""
        if self.timer.isActive():
            self.timer.stop()
        if self.source is not None:
            self.source.close()
            self.source = None

    def poll(self) -> int:
        """Apply the messages waiting now; returns how many were taken."""
        if self.source is None:
            return 0
        messages = self.source.poll(MAX_MESSAGES_PER_POLL)
        for topic, body in messages:
            self.live.apply(topic, body)
        self._report_connection()
        return len(messages)

    def _report_connection(self) -> None:
        where, healthy = self.source.connection()
        if healthy and self._healthy is False:
            self.reconnects += 1
        if healthy or self._healthy is not None:
            self._healthy = healthy
        if self.live.status.get("source_state") == "ended":
            text, state = f"{where}: source ended", "ended"
        elif healthy:
            text = f"{where}: receiving" + (f" (reconnected {self.reconnects}x)" if self.reconnects else "")
            state = "receiving"
        elif self._healthy is None:
            text, state = f"{where}: waiting for the publisher", "waiting"
        else:
            text, state = f"{where}: no data, reconnecting", "lost"
        if (text, state) != self._shown:
            self._shown = (text, state)
            self.connection_changed.emit(text, state)
