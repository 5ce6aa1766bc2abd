"""The visualiser's main window: spectrogram, class heatmap and event lanes on one time axis, the top-k
clipwise chart beside them, controls above and the status bar below. It draws `LiveData` on a timer
and never waits on the pipeline or a socket."""

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QLabel,
    QLineEdit,
    QMainWindow,
    QSpinBox,
    QSplitter,
    QToolBar,
)

from htsat_live.gui.heatmap import HeatmapPlot
from htsat_live.gui.lanes import LanesPlot
from htsat_live.gui.live_data import SPANS_SECONDS, LiveData
from htsat_live.gui.spectrogram import SpectrogramPlot
from htsat_live.gui.status import StatusBar
from htsat_live.gui.topk import TopKPlot

RANK_INTERVAL_SECONDS = 0.5  # how often the heatmap's choice of classes is revisited


class LiveWindow(QMainWindow):
    """`set_threshold(label, on)` applies a threshold to the event detector (local mode); None makes
    the threshold box read-only (remote mode: PUB/SUB carries nothing back)."""

    def __init__(self, live: LiveData, title: str, set_threshold: Callable[[str, float], None] | None = None,
                 span_seconds: float = 30.0, top_n: int = 8, top_k: int = 10, redraw_hz: float = 30.0):
        super().__init__()
        self.live = live
        self.set_threshold = set_threshold
        self.paused = False
        self._drawn_version = -1
        self._shown_status = ({}, -1)
        self._classes: list[int] = []
        self._ranked_at = -np.inf
        self.setWindowTitle(title)
        self.resize(1400, 860)

        self.plots = pg.GraphicsLayoutWidget()
        self.spectrogram = SpectrogramPlot()
        self.heatmap = HeatmapPlot()
        self.lanes = LanesPlot()
        for row, (plot, stretch) in enumerate(((self.spectrogram, 3), (self.heatmap, 3), (self.lanes, 2))):
            self.plots.addItem(plot, row=row, col=0)
            self.plots.ci.layout.setRowStretchFactor(row, stretch)
        self.topk_view = pg.GraphicsLayoutWidget()
        self.topk = TopKPlot(top_k)
        self.topk_view.addItem(self.topk)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.plots)
        splitter.addWidget(self.topk_view)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)
        self.setCentralWidget(splitter)
        self.status_bar = StatusBar()
        self.setStatusBar(self.status_bar)
        self._build_controls(span_seconds, top_n)

        self.timer = QTimer(self)
        self.timer.setInterval(max(1, round(1000 / redraw_hz)))
        self.timer.timeout.connect(self.redraw)
        self.timer.start()

    def _build_controls(self, span_seconds: float, top_n: int) -> None:
        bar = QToolBar("controls")
        bar.setMovable(False)
        self.addToolBar(bar)
        self.pause_action = QAction("Pause", self, checkable=True, shortcut=QKeySequence(Qt.Key.Key_Space))
        self.pause_action.toggled.connect(self.set_paused)
        bar.addAction(self.pause_action)
        bar.addSeparator()
        bar.addWidget(QLabel(" history "))
        self.span_box = QComboBox()
        for seconds in SPANS_SECONDS:
            self.span_box.addItem(f"{seconds} s", seconds)
        self.span_box.setCurrentIndex(int(np.argmin([abs(s - span_seconds) for s in SPANS_SECONDS])))
        self.span_box.currentIndexChanged.connect(self._controls_changed)
        bar.addWidget(self.span_box)
        bar.addWidget(QLabel(" classes "))
        self.top_n_box = QSpinBox()
        self.top_n_box.setRange(1, 64)
        self.top_n_box.setValue(top_n)
        self.top_n_box.valueChanged.connect(self._controls_changed)
        bar.addWidget(self.top_n_box)
        self.filter_box = QLineEdit()
        self.filter_box.setPlaceholderText("filter classes: dog, siren, ...")
        self.filter_box.setFixedWidth(220)
        self.filter_box.textChanged.connect(self._controls_changed)
        bar.addWidget(self.filter_box)
        bar.addSeparator()
        bar.addWidget(QLabel(" threshold "))
        self.target_box = QComboBox()
        self.target_box.setMinimumWidth(180)
        self.target_box.currentTextChanged.connect(self._show_threshold)
        bar.addWidget(self.target_box)
        self.threshold_box = QDoubleSpinBox()
        self.threshold_box.setRange(0.0, 1.0)
        self.threshold_box.setSingleStep(0.05)
        self.threshold_box.setDecimals(2)
        if self.set_threshold is None:
            self.threshold_box.setReadOnly(True)
            self.threshold_box.setToolTip("the on-threshold in force in the pipeline (read-only here)")
        else:
            self.threshold_box.editingFinished.connect(self._apply_threshold)
        bar.addWidget(self.threshold_box)
        bar.addSeparator()
        for text, keys, slot in (("Save PNG", QKeySequence.StandardKey.Save, self._ask_save_png),
                                 ("Export events", None, self._ask_export_events),
                                 ("Quit", QKeySequence(Qt.Modifier.CTRL | Qt.Key.Key_Q), self.close)):
            action = QAction(text, self)
            if keys is not None:
                action.setShortcut(keys)
            action.triggered.connect(slot)
            bar.addAction(action)

    @property
    def span_seconds(self) -> float:
        return float(self.span_box.currentData())

    def set_paused(self, paused: bool) -> None:
        """Freeze the view (data keeps arriving and is drawn again on resume)."""
        self.paused = paused
        self.pause_action.setChecked(paused)
        self.pause_action.setText("Resume" if paused else "Pause")
        if not paused:
            self._drawn_version = -1

    def _controls_changed(self) -> None:
        self._ranked_at = -np.inf
        self._drawn_version = -1

    def display_now(self) -> tuple[float, bool]:
        """Stream time at the right edge of the plots, and whether it is still moving on its own.

        The newest data is shown one hop late and the edge advances with the clock between messages,
        so the view scrolls steadily although data arrives once per hop."""
        live = self.live
        hop = live.status.get("hop")
        if not isinstance(hop, (int, float)) or hop <= 0:
            return live.now, False
        elapsed = time.monotonic() - live.advanced_at
        return live.now - hop + min(elapsed, hop), elapsed < hop

    def redraw(self, force: bool = False) -> None:
        """Draw the newest data, unless paused or (without `force`) nothing changed since the last redraw."""
        live = self.live
        if live.status is not self._shown_status[0] or live.counts.missed != self._shown_status[1]:
            self._shown_status = (live.status, live.counts.missed)
            self.status_bar.show_status(live.status, live.counts.missed)
            self._update_targets()
        now, moving = self.display_now()
        if self.paused or not (force or moving or live.version != self._drawn_version):
            return
        self._drawn_version = live.version
        span = self.span_seconds
        self.spectrogram.refresh(live.mel, now, span)
        self.spectrogram.wall_axis.set_wall_offset(live.wall_offset)
        if live.scores is not None:
            self._rank_classes(span)
        self.heatmap.refresh(live.scores, self._classes, [live.label(i) for i in self._classes],
                             live.final_upto, now, span)
        self.topk.refresh(live.clipwise, live.label)
        self.lanes.refresh(live.events(), now, span)

    def _rank_classes(self, span: float) -> None:
        """Choose the heatmap's classes: the top N by peak score over the shown span, among the
        classes whose label matches the filter (comma-separated, case-insensitive substrings)."""
        if time.monotonic() - self._ranked_at < RANK_INTERVAL_SECONDS:
            return
        self._ranked_at = time.monotonic()
        scores = self.live.scores
        frames = min(scores.length, int(round(span / scores.frame_seconds)))
        peaks = scores.view()[scores.length - frames:].max(axis=0)  # [C]
        terms = [t.strip().lower() for t in self.filter_box.text().split(",") if t.strip()]
        candidates = [i for i in range(scores.width)
                      if self.live.labels[i] and (not terms or any(t in self.live.labels[i].lower() for t in terms))]
        order = sorted(candidates, key=lambda i: -peaks[i])
        self._classes = order[:self.top_n_box.value()]

    def _update_targets(self) -> None:
        thresholds = self.live.status.get("thresholds", {})
        if self.target_box.count() != len(thresholds):
            current = self.target_box.currentText()
            self.target_box.blockSignals(True)
            self.target_box.clear()
            self.target_box.addItems(sorted(thresholds))
            self.target_box.setCurrentText(current)
            self.target_box.blockSignals(False)
        if not self.threshold_box.hasFocus():
            self._show_threshold(self.target_box.currentText())

    def _show_threshold(self, target: str) -> None:
        on_off = self.live.status.get("thresholds", {}).get(target)
        if on_off:
            self.threshold_box.setValue(float(on_off[0]))

    def _apply_threshold(self) -> None:
        target = self.target_box.currentText()
        if target:
            self.set_threshold(target, self.threshold_box.value())

    def save_png(self, path: str | Path) -> bool:
        return self.grab().save(str(path), "PNG")

    def export_events(self, path: str | Path) -> int:
        """Write the finished events seen so far: JSON Lines of their `end` messages for a .jsonl path,
        otherwise TSV (onset, offset, event_label, peak). Returns how many were written."""
        path = Path(path)
        events = list(self.live.finished)
        with open(path, "w", encoding="utf-8") as file:
            if path.suffix == ".jsonl":
                for event in events:
                    file.write(json.dumps(event) + "\n")
            else:
                file.write("onset\toffset\tevent_label\tpeak\n")
                for event in events:
                    file.write(f"{event['onset']:.3f}\t{event['offset']:.3f}\t{event['label']}\t{event['peak']:.4f}\n")
        return len(events)

    def _ask_save_png(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save PNG", time.strftime("htsat-live-%Y%m%d-%H%M%S.png"),
                                              "PNG images (*.png)")
        if path:
            self.save_png(path)

    def _ask_export_events(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export events", time.strftime("events-%Y%m%d-%H%M%S.jsonl"),
                                              "JSON Lines (*.jsonl);;TSV (*.tsv)")
        if path:
            count = self.export_events(path)
            self.status_bar.showMessage(f"{count} events written to {path}", 5000)
