"""The visualiser's main window: spectrogram, class heatmap (with its colour scale) and event lanes on
one time axis, the top-k clipwise chart beside them, controls above and the status bar below. It
draws `LiveData` on a timer and never waits on the pipeline or a socket.

The heatmap, the top-k chart and the lanes show their classes in one order and through one filter
(`ClassOrder`), both chosen by the user; with a QSettings the window remembers those choices, the
span, the heatmap's row count and its own size for the next run. Clicking an event bar selects the
event and plays its audio, where the audio is at hand (local mode). Paused, the view can be dragged
back through LiveData's archive and zoomed in time."""

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QColor, QKeySequence, QPalette
from PySide6.QtWidgets import (
    QAbstractSpinBox,
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

from htsat_live.gui.classes import ORDERS, ClassOrder
from htsat_live.gui.heatmap import HeatmapPlot
from htsat_live.gui.history import FrameHistory
from htsat_live.gui.lanes import LanesPlot
from htsat_live.gui.live_data import SPANS_SECONDS, EventBar, LiveData
from htsat_live.gui.playback import Player
from htsat_live.gui.spectrogram import SpectrogramPlot
from htsat_live.gui.status import StatusBar
from htsat_live.gui.topk import TopKPlot
from htsat_live.gui.view_settings import (
    MAX_ROWS,
    ViewChoices,
    load_choices,
    save_choices,
)
from htsat_live.model import SAMPLE_RATE, write_events

REMOTE_LISTEN = "listening needs the audio, which stays on the detector's machine (remote mode)"
MIN_ZOOM_SECONDS = 1.0  # the narrowest view a paused user can zoom to
RANK_INTERVAL_SECONDS = 0.5  # how often the live view renews the classes' peaks (the heatmap's rows, "by score")
TOPK_SHARE = 0.2  # of the window's width, for the top-k chart
TOPK_MIN_WIDTH = 260  # pixels: names, bars, values and the axis's "1" fit in it


class LiveWindow(QMainWindow):
    """`set_threshold(label, on)` applies a threshold to the event detector, and
    `event_audio(stream, event)` returns an event's audio (LookupError when there is none): both in
    local mode. None for either makes the threshold box read-only and listening unavailable (remote
    mode: PUB/SUB carries nothing back, and the audio stays where the detector runs). `span_seconds` and
    `top_n` (heatmap rows) given here win over those remembered in `settings`."""

    def __init__(
        self,
        live: LiveData,
        title: str,
        set_threshold: Callable[[str, float], None] | None = None,
        span_seconds: int | None = None,
        top_n: int | None = None,
        top_k: int = 10,
        redraw_hz: float = 30.0,
        settings: QSettings | None = None,
        event_audio: Callable[[str, EventBar], np.ndarray] | None = None,
    ):
        super().__init__()
        self.live = live
        self.set_threshold = set_threshold
        self.event_audio = event_audio
        self.player = Player()
        self.settings = settings
        self.paused = False
        self._stale = True  # something the view shows changed besides the data (a control, the selection)
        self._drawn_version = -1  # LiveData.version last drawn
        self._drawn_range: tuple[float, float] | None = None  # stream seconds at the plots' edges
        self._browse: tuple[float, float] | None = None  # where the user moved the paused view to
        self._shown_status = ({}, -1)
        self._classes: list[int] = []  # the heatmap's rows, top down
        self._ranked_at = -np.inf
        choices = load_choices(settings) if settings is not None else ViewChoices()
        choices.span = span_seconds or choices.span
        choices.rows = top_n or choices.rows
        self.class_order = ClassOrder(choices.order, choices.filter)
        self.setWindowTitle(title)
        self.resize(choices.width, choices.height)

        self.plots = pg.GraphicsLayoutWidget()
        self.spectrogram = SpectrogramPlot()
        self.heatmap = HeatmapPlot()
        self.lanes = LanesPlot()
        for row, (plot, stretch) in enumerate(((self.spectrogram, 3), (self.heatmap, 3), (self.lanes, 2))):
            self.plots.addItem(plot, row=row, col=0)
            self.plots.ci.layout.setRowStretchFactor(row, stretch)
        self.plots.addItem(self.heatmap.colour_bar, row=1, col=1)
        self.plots.scene().sigMouseClicked.connect(self._clicked)
        self.lanes.vb.sigXRangeChanged.connect(self._view_moved)
        self.lanes.hint = "click to listen" if event_audio is not None else REMOTE_LISTEN
        self.topk_view = pg.GraphicsLayoutWidget()
        self.topk = TopKPlot(top_k)
        self.topk_view.addItem(self.topk)
        self.topk_view.setMinimumWidth(TOPK_MIN_WIDTH)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.plots)
        splitter.addWidget(self.topk_view)
        splitter.setStretchFactor(0, round((1 - TOPK_SHARE) / TOPK_SHARE))  # their shares of a change in width
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([round((1 - TOPK_SHARE) * choices.width), round(TOPK_SHARE * choices.width)])
        self.setCentralWidget(splitter)
        self.status_bar = StatusBar()
        self.setStatusBar(self.status_bar)
        self._build_controls(choices)

        self.timer = QTimer(self)
        self.timer.setInterval(max(1, round(1000 / redraw_hz)))
        self.timer.timeout.connect(self.redraw)
        self.timer.start()

    def _build_controls(self, choices: ViewChoices) -> None:
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
        self.span_box.setCurrentIndex(int(np.argmin([abs(s - choices.span) for s in SPANS_SECONDS])))
        self.span_box.currentIndexChanged.connect(self._controls_changed)
        bar.addWidget(self.span_box)
        bar.addWidget(QLabel(" classes "))
        self.top_n_box = QSpinBox()
        self.top_n_box.setRange(1, MAX_ROWS)
        self.top_n_box.setValue(choices.rows)
        self.top_n_box.setToolTip("rows of the heatmap: the classes that scored highest in the span shown")
        self.top_n_box.valueChanged.connect(self._controls_changed)
        bar.addWidget(self.top_n_box)
        self.order_box = QComboBox()
        for key, text in ORDERS.items():
            self.order_box.addItem(text, key)
        self.order_box.setCurrentIndex(list(ORDERS).index(choices.order))
        self.order_box.setToolTip("the order of the classes in the heatmap, the top-k chart and the lanes")
        self.order_box.currentIndexChanged.connect(self._controls_changed)
        bar.addWidget(self.order_box)
        self.filter_box = QLineEdit(choices.filter)
        self.filter_box.setPlaceholderText("filter classes: dog, siren, ...")
        self.filter_box.setToolTip("comma-separated parts of class names; applies to every panel")
        self.filter_box.setFixedWidth(200)
        self.filter_box.textChanged.connect(self._controls_changed)
        bar.addWidget(self.filter_box)
        bar.addSeparator()
        bar.addWidget(QLabel(" threshold "))
        self.target_box = QComboBox()
        self.target_box.setMinimumWidth(150)
        self.target_box.currentTextChanged.connect(self._show_threshold)
        bar.addWidget(self.target_box)
        self.threshold_box = QDoubleSpinBox()
        self.threshold_box.setRange(0.0, 1.0)
        self.threshold_box.setSingleStep(0.05)
        self.threshold_box.setDecimals(2)
        if self.set_threshold is None:
            self._make_read_only(self.threshold_box)
        else:
            self.threshold_box.editingFinished.connect(self._apply_threshold)
        bar.addWidget(self.threshold_box)
        bar.addSeparator()
        self.listen_action = QAction("Listen", self, shortcut=QKeySequence(Qt.Key.Key_L))
        self.listen_action.triggered.connect(self.listen)
        if self.event_audio is None:
            self.listen_action.setEnabled(False)
            self.listen_action.setToolTip(f"Listen: {REMOTE_LISTEN}")
        else:
            self.listen_action.setToolTip("Listen: play the selected event again (click an event bar to select it)")
        bar.addAction(self.listen_action)
        for text, keys, slot in (
            ("Save PNG", QKeySequence.StandardKey.Save, self._ask_save_png),
            ("Export events", None, self._ask_export_events),
            ("Quit", QKeySequence(Qt.Modifier.CTRL | Qt.Key.Key_Q), self.close),
        ):
            action = QAction(text, self)
            if keys is not None:
                action.setShortcut(keys)
            action.triggered.connect(slot)
            bar.addAction(action)

    @staticmethod
    def _make_read_only(box: QDoubleSpinBox) -> None:
        """A value box that looks like what it is, a figure to read: no arrows, no frame, no edit field."""
        box.setReadOnly(True)
        box.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.NoButtons)
        box.setFrame(False)
        box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        palette = box.palette()
        palette.setColor(QPalette.ColorRole.Base, QColor(Qt.GlobalColor.transparent))  # the toolbar shows through
        box.setPalette(palette)
        box.setToolTip(
            "the on-threshold in force in the remote pipeline: read-only here (set it where the pipeline runs)"
        )

    @property
    def span_seconds(self) -> float:
        return float(self.span_box.currentData())

    def choices(self) -> ViewChoices:
        """What the user chose, as it stands now."""
        return ViewChoices(
            order=self.class_order.order,
            span=int(self.span_box.currentData()),
            rows=self.top_n_box.value(),
            filter=self.filter_box.text(),
            width=self.width(),
            height=self.height(),
        )

    def set_paused(self, paused: bool) -> None:
        """Freeze the view (data keeps arriving). While paused, dragging or scrolling over the plots moves
        back through the archive (ARCHIVE_SECONDS) and zooms in time; resuming goes back to live."""
        self.paused = paused
        self.pause_action.setChecked(paused)
        self.pause_action.setText("Live" if paused else "Pause")
        self._browse = self._drawn_range if paused else None
        limits = dict(xMin=None, xMax=None, minXRange=None)  # none while live: the view follows the data
        if paused:  # from the archive's start to now, and never less than what is in view
            live = self.live
            left, right = self._drawn_range or (live.now, live.now)
            limits = dict(
                xMin=min(left, max(0.0, live.now - live.archive_seconds)),
                xMax=max(right, live.now),
                minXRange=MIN_ZOOM_SECONDS,
            )
        for plot in (self.spectrogram, self.heatmap, self.lanes):
            plot.setMouseEnabled(x=paused, y=False)
            plot.vb.setLimits(**limits)
            if plot is not self.lanes:
                plot.setXLink(self.lanes if paused else None)  # one time axis to move while paused
        if not paused:
            self._stale = True

    def _view_moved(self, _, x_range) -> None:
        if self.paused:
            self._browse = (float(x_range[0]), float(x_range[1]))

    def _controls_changed(self) -> None:
        self.class_order = ClassOrder(self.order_box.currentData(), self.filter_box.text())
        self._ranked_at = -np.inf
        self._stale = True

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
        """Draw what changed since the last redraw: live, the newest data as it scrolls in (`force`: even
        when nothing changed); paused, only where the user moved the view to."""
        live = self.live
        if live.status is not self._shown_status[0] or live.counts.missed != self._shown_status[1]:
            self._shown_status = (live.status, live.counts.missed)
            self.status_bar.show_status(live.status, live.counts.missed)
            self._update_targets()
        if self.paused:
            if self._browse is None or (self._browse == self._drawn_range and not self._stale):
                return
            left, right = self._browse
        else:
            now, moving = self.display_now()
            if not (force or moving or self._stale or live.version != self._drawn_version):
                return
            left, right = now - self.span_seconds, now
        self._stale = False
        self._drawn_version, self._drawn_range = live.version, (left, right)
        self.spectrogram.refresh(self._held(live.mel, live.archived_mel, left), left, right)
        self.spectrogram.wall_axis.set_wall_offset(live.wall_offset)
        scores = self._held(live.scores, live.archived_scores, left)
        if scores is not None and (self.paused or time.monotonic() - self._ranked_at >= RANK_INTERVAL_SECONDS):
            self._rank_classes(scores, left, right)
        self.heatmap.refresh(
            scores, self._classes, [live.label(i) for i in self._classes], live.final_upto, left, right
        )
        if not self.paused:  # the chart shows the newest window: it stays as it was when paused
            best = self.class_order.best(live.clipwise, live.labels, self.topk.k)
            self.topk.refresh(live.clipwise, best, [live.label(i) for i in best])
        self.lanes.refresh(live.events(), left, right, self.class_order)

    @staticmethod
    def _held(recent: FrameHistory | None, archive: FrameHistory | None, left: float) -> FrameHistory | None:
        """The live history while it reaches back to `left`, else the coarser archive."""
        if recent is None or recent.start_seconds() <= max(left, 0.0):
            return recent
        return archive

    def _rank_classes(self, scores: FrameHistory, left: float, right: float) -> None:
        """Renew each class's peak score from stream time `left` to `right`, and with it the heatmap's
        rows: the top N by peak among the classes that match the filter."""
        self._ranked_at = time.monotonic()
        _, shown = scores.frames(math.floor(left / scores.frame_seconds), math.ceil(right / scores.frame_seconds))
        if len(shown) > 0:
            self.class_order.peaks = shown.max(axis=0)  # [C]
        self._classes = self.class_order.best(self.class_order.peaks, self.live.labels, self.top_n_box.value())

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

    def _clicked(self, click) -> None:
        if click.button() != Qt.MouseButton.LeftButton or not self.lanes.vb.sceneBoundingRect().contains(
            click.scenePos()
        ):
            return
        point = self.lanes.vb.mapSceneToView(click.scenePos())
        event = self.lanes.event_at(point.x(), point.y())
        if event is not None:
            self.lanes.select(event)
            self._stale = True  # show the selection
            self.listen()

    def listen(self) -> None:
        """Play the selected event's audio; the status bar says what plays, or why nothing can."""
        event = self.lanes.selected
        if event is None:
            self.status_bar.show_notice("click an event bar to choose what to listen to")
            return
        if self.event_audio is None:
            self.status_bar.show_notice(REMOTE_LISTEN)
            return
        try:
            audio = self.event_audio(self.live.stream, event)
            self.player.play(audio, SAMPLE_RATE)
        except (LookupError, OSError) as error:
            self.status_bar.show_notice(f"cannot play {event.label} at {event.onset:.1f} s: {error}")
            return
        self.status_bar.show_notice(
            f"playing {event.label}, {event.onset:.1f}-{event.offset:.1f} s ({len(audio) / SAMPLE_RATE:.1f} s of audio)"
        )

    def save_png(self, path: str | Path) -> bool:
        """Save the window as it looks now; the status bar says where (or that it could not)."""
        saved = self.grab().save(str(path), "PNG")
        where = Path(path).absolute()
        self.status_bar.show_notice(f"saved {where}" if saved else f"could not save {where}")
        return saved

    def export_events(self, path: str | Path) -> int:
        """Write the finished events seen so far: JSON Lines of their `end` messages for a .jsonl path,
        otherwise the DESED event table the detector's TSV sink writes (the stream as filename). Returns how
        many were written; the status bar says where."""
        path = Path(path)
        events = list(self.live.finished)
        if path.suffix == ".jsonl":
            path.write_text("".join(json.dumps(event) + "\n" for event in events), encoding="utf-8")
        else:
            write_events(path, [(event["stream"], event["onset"], event["offset"], event["label"]) for event in events])
        self.status_bar.show_notice(f"{len(events)} events written to {path.absolute()}")
        return len(events)

    def _ask_save_png(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save PNG", time.strftime("htsat-live-%Y%m%d-%H%M%S.png"), "PNG images (*.png)"
        )
        if path:
            self.save_png(path)

    def _ask_export_events(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export events", time.strftime("events-%Y%m%d-%H%M%S.jsonl"), "JSON Lines (*.jsonl);;TSV (*.tsv)"
        )
        if path:
            try:
                self.export_events(path)
            except OSError as error:
                self.status_bar.show_notice(f"could not write {path}: {error.strerror or error}")

    def closeEvent(self, event) -> None:
        self.player.stop()
        if self.settings is not None:
            save_choices(self.settings, self.choices())
        super().closeEvent(event)
