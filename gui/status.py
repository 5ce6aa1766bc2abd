"""The status bar: where the audio comes from, how loud it is, how fast and how well the pipeline keeps up,
and whether the remote connection is up."""

from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

LEVEL_FLOOR_DB = -60.0  # the level meter's empty mark (dBFS)


class StatusBar(QStatusBar):
    def __init__(self):
        super().__init__()
        self.source = QLabel("source: -")
        self.rate = QLabel("- Hz")
        self.level = QProgressBar()
        self.level.setRange(int(LEVEL_FLOOR_DB), 0)
        self.level.setFormat("%v dBFS")
        self.level.setFixedWidth(120)
        self.backend = QLabel("backend: -")
        self.hop = QLabel("hop: -")
        self.latency = QLabel("latency p50/p95: -")
        self.counters = QLabel("drops 0 / skips 0")
        self.connection = QLabel("")
        for widget in (self.source, self.rate, self.level, self.backend, self.hop, self.latency,
                       self.counters):
            self.addWidget(widget)
        self.addPermanentWidget(self.connection)

    def show_status(self, status: dict, missed_messages: int) -> None:
        """Fill the fields from the newest `status` message (docs/schema.md) and the count of messages
        this viewer lost in transit."""
        state = status.get("source_state", "-")
        self.source.setText(f"{status.get('source', '-')} ({state})")
        self.source.setToolTip(status.get("error") or "")
        native = status.get("input_rate")
        self.rate.setText(f"{status.get('sample_rate', '-')} Hz" + (f" (from {native} Hz)" if native else ""))
        level = status.get("level_dbfs")
        if isinstance(level, (int, float)):
            self.level.setValue(int(max(LEVEL_FLOOR_DB, min(0.0, level))))
            self.level.setFormat(f"{level:.1f} dBFS")
        self.backend.setText(f"{status.get('backend', '-')}/{status.get('device', '-')}")
        hop = status.get("hop")
        self.hop.setText(f"hop {hop:g} s" if isinstance(hop, (int, float)) else "hop -")
        latency = status.get("latency", {})
        self.latency.setText(f"latency p50/p95 {_seconds(latency.get('hop_p50'))}/{_seconds(latency.get('hop_p95'))}")
        counters, dropped = status.get("counters", {}), status.get("dropped", {})
        drops = counters.get("input_overflows", 0)  # audio the capture lost
        skips = counters.get("skipped_windows", 0) + counters.get("failed_windows", 0)  # windows not scored
        lost = sum(dropped.values()) + missed_messages  # messages that did not reach this view
        self.counters.setText(f"drops {drops} / skips {skips} / lost msgs {lost}")
        self.counters.setToolTip(", ".join(f"{key} {value}" for key, value in counters.items()))

    def show_connection(self, text: str, healthy: bool) -> None:
        self.connection.setText(text)
        self.connection.setStyleSheet("" if healthy else "color: #d04040; font-weight: bold")


def _seconds(value) -> str:
    return f"{value * 1000:.0f} ms" if isinstance(value, (int, float)) else "-"
