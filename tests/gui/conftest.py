"""Fixtures for the visualiser tests: a Qt application on the offscreen platform (real widgets, no
display), schema-v1 messages built the way the publisher sends them, a way to read the pixel that a
plot draws at a data coordinate, and QSettings kept in the test's own folder."""

import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import QPointF, QRect, QSettings  # noqa: E402
from PySide6.QtGui import QColor, QImage  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from htsat_live.gui.window import LiveWindow  # noqa: E402
from htsat_live.model import FRAME_SECONDS  # noqa: E402

LABELS = ["Speech", "Dog", "Siren", "Music"]  # the classes of the test model, in its order
FRAMES_PER_SECOND = 1 / FRAME_SECONDS


class Messages:
    """Message bodies per docs/schema.md, with a per-topic `seq` like one publisher's, for a model
    whose classes are `labels`."""

    def __init__(self, stream: str = "test", wall_start: float = 1_764_000_000.0, labels: list[str] = LABELS):
        self.stream = stream
        self.wall_start = wall_start
        self.labels = labels
        self.seq: dict[str, int] = {}

    def _envelope(self, topic: str) -> dict:
        seq = self.seq.get(topic, 0)
        self.seq[topic] = seq + 1
        return {"schema": 1, "topic": topic, "stream": self.stream, "seq": seq, "sent_time": time.time()}

    def mel(self, grid_start: int, frames: np.ndarray) -> dict:
        return {
            **self._envelope("mel"),
            "grid_start": grid_start,
            "frame_seconds": 0.01,
            "wall_time_start": self.wall_start + grid_start * 0.01,
            "bins": frames.shape[1],
            "frames": np.round(frames, 1).tolist(),
        }

    def scores(
        self,
        grid_start: int,
        frames: np.ndarray,
        labels: list[str],
        final_upto: int,
        classes: list[int] | None = None,
        clipwise: np.ndarray | None = None,
    ) -> dict:
        classes = list(range(frames.shape[1])) if classes is None else classes
        clipwise = frames.max(axis=0) if clipwise is None else clipwise
        return {
            **self._envelope("scores"),
            "grid_start": grid_start,
            "frame_seconds": FRAME_SECONDS,
            "wall_time_start": self.wall_start + grid_start * FRAME_SECONDS,
            "grid_end": grid_start + len(frames),
            "final_upto": final_upto,
            "classes": classes,
            "labels": [labels[i] for i in classes],
            "frames": np.round(frames, 4).tolist(),
            "clipwise": np.round(clipwise, 4).tolist(),
            "window_start": 0,
            "window_samples": 320000,
            "hop": 1.0,
        }

    def event(
        self,
        event_id: int,
        state: str,
        label: str,
        onset: float,
        offset: float,
        peak: float,
        cancelled: bool = False,
        confirmed: bool | None = None,
    ) -> dict:
        """An event of the class named `label` (a label not among the classes stands for a group of
        classes 0 and 1); unless told, it is confirmed when it ends."""
        classes = [self.labels.index(label)] if label in self.labels else [0, 1]
        confirmed = state == "end" and not cancelled if confirmed is None else confirmed
        return {
            **self._envelope("event"),
            "id": event_id,
            "state": state,
            "label": label,
            "classes": classes,
            "onset": onset,
            "offset": offset,
            "onset_frame": round(onset / FRAME_SECONDS),
            "offset_frame": round(offset / FRAME_SECONDS),
            "onset_wall": self.wall_start + onset,
            "offset_wall": self.wall_start + offset,
            "peak": peak,
            "mean": peak * 0.8,
            "threshold": 0.5,
            "final": state == "end",
            "cancelled": cancelled,
            "latency": 1.0,
            "confirmed": confirmed,
            "confirm_latency": 1.5 if confirmed else None,
        }

    def timeline(
        self, seconds: int, high: dict[int, tuple[float, float, float]] | None = None, final_lag: float = 3.0
    ) -> list[dict]:
        """`scores` messages of every class, one per second of stream time; class c scores 0.05, or v
        during high[c] = (t0, t1, v); frames older than `final_lag` seconds are final."""
        bodies = []
        for second in range(seconds):
            start, end = round(second * FRAMES_PER_SECOND), round((second + 1) * FRAMES_PER_SECOND)
            times = np.arange(start, end) / FRAMES_PER_SECOND
            frames = np.full((end - start, len(self.labels)), 0.05)
            for c, (t0, t1, value) in (high or {}).items():
                frames[(times >= t0) & (times < t1), c] = value
            final = max(0, round((second + 1 - final_lag) * FRAMES_PER_SECOND))
            bodies.append(self.scores(start, frames, self.labels, final))
        return bodies

    def status(self, **fields) -> dict:
        body = {
            **self._envelope("status"),
            "source": "tone.wav",
            "source_state": "running",
            "error": None,
            "sample_rate": 32000,
            "input_rate": 44100,
            "level_dbfs": -20.0,
            "peak_dbfs": -6.0,
            "stream_seconds": 30.0,
            "hop": 1.0,
            "window": 10.0,
            "model": "default",
            "backend": "torch",
            "device": "cpu",
            "num_classes": 10,
            "thresholds": {"Dog": [0.5, 0.4]},
            "final_upto": 0,
            "rates": {"windows_per_s": 1.0, "audio_seconds_per_s": 1.0},
            "counters": {
                "samples": 0,
                "windows": 0,
                "skipped_windows": 0,
                "failed_windows": 0,
                "overruns": 0,
                "input_overflows": 0,
                "nonfinite_samples": 0,
                "reconnects": 0,
                "events": 0,
            },
            "dropped": {"event": 0, "scores": 0, "status": 0, "mel": 0},
            "queue": 0,
            "latency": {"hop_p50": 0.2, "hop_p95": 0.3, "event_p50": 1.0, "event_p95": 2.0},
        }
        body.update(fields)
        return body


@pytest.fixture(scope="session")
def qapp() -> QApplication:
    return QApplication.instance() or QApplication([])


@pytest.fixture
def messages() -> Messages:
    return Messages()


@pytest.fixture
def feed(messages):
    """Apply `messages.timeline(...)` to a LiveData: `feed(live, seconds, high=None, final_lag=3.0)`."""

    def apply(live, seconds: int, **options) -> None:
        for body in messages.timeline(seconds, **options):
            assert live.apply("scores", body)

    return apply


@pytest.fixture
def window(qapp):
    """`window(live, size=(1200, 800), **LiveWindow options)`: a shown LiveWindow, closed after the test
    (size None: the size it chose itself)."""
    windows = []

    def make(live, size: tuple[int, int] | None = (1200, 800), **options) -> LiveWindow:
        w = LiveWindow(live, "test", **options)
        if size is not None:
            w.resize(*size)
        w.show()
        qapp.processEvents()  # the window becomes the active one, so its shortcuts work
        windows.append(w)
        return w

    yield make
    for w in windows:
        w.close()


@pytest.fixture(autouse=True)
def settings_folder(tmp_path_factory):
    """Where QSettings() keeps its files during a test: a folder of its own, never the user's ~/.config."""
    folder = tmp_path_factory.mktemp("settings")
    for form in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(form, QSettings.Scope.UserScope, str(folder))
    return folder


def _window_point(window, plot, x: float, y: float) -> tuple[int, int]:
    """Where data point (x, y) of `plot` (a PlotItem in one of the window's GraphicsViews) lands in
    an image grabbed from the window."""
    scene_point = plot.vb.mapViewToScene(QPointF(x, y))
    view = plot.scene().views()[0]
    point = view.mapTo(window, view.mapFromScene(scene_point))
    return point.x(), point.y()


class Grab:
    """A grabbed image of a window, read by data coordinates of its plots."""

    def __init__(self, window):
        self.window = window
        self.image: QImage = window.grab().toImage()

    def point(self, plot, x: float, y: float) -> tuple[int, int]:
        return _window_point(self.window, plot, x, y)

    def colour(self, plot, x: float, y: float) -> QColor:
        return self.image.pixelColor(*self.point(plot, x, y))

    def row(self, plot, y: float, x_from: float, x_to: float) -> tuple[int, list[QColor]]:
        """The pixels along data height `y` from data x `x_from` to `x_to`: (first pixel x, colours)."""
        (left, top), (right, _) = self.point(plot, x_from, y), self.point(plot, x_to, y)
        return left, [self.image.pixelColor(px, top) for px in range(left, right + 1)]

    def rect(self, widget) -> QRect:
        """Where `widget` (a child of the window) lies in the image."""
        return QRect(widget.mapTo(self.window, widget.rect().topLeft()), widget.size())

    def colours_in(self, rect: QRect) -> list[QColor]:
        return [
            self.image.pixelColor(x, y)
            for y in range(rect.top(), rect.bottom() + 1)
            for x in range(rect.left(), rect.right() + 1)
        ]

    def ink(self, rect: QRect) -> int:
        """Pixels in `rect` that differ from its most common colour (its background): text, marks."""
        colours = [c.rgb() for c in self.colours_in(rect)]
        background = max(set(colours), key=colours.count)
        return sum(c != background for c in colours)


@pytest.fixture
def grab(qapp):
    def take(window) -> Grab:
        qapp.processEvents()
        return Grab(window)

    return take
