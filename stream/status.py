"""The status of one stream: its report and its once-a-second `status` message.

`StreamReport` holds what a stream counted (samples, windows, overruns, events, ...) and its recent
hop and event latencies; `Pipeline.stop()` returns one per stream. `StatusReporter` keeps a
stream's report up to date from the stream's parts and builds the `status` body of
docs/schema.md: the counters, the latency percentiles, the rates since the previous status, the
level of the last second of input and the settings in force.
"""

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from htsat_live.model import SAMPLE_RATE, WINDOW_SAMPLES
from htsat_live.stream.capture import Source
from htsat_live.stream.config import Config
from htsat_live.stream.events import EventDetector
from htsat_live.stream.loudness import LoudnessDetector
from htsat_live.stream.ring import Overrun, RingBuffer
from htsat_live.stream.stitch import Stitcher
from htsat_live.stream.windows import WindowScheduler
from htsat_live.stream.inference.worker import InferenceWorker

STATUS_PERIOD = 1.0  # seconds between status messages
LATENCY_HISTORY = 100  # latencies kept for the p50/p95 on status


def percentile(values, q: float) -> float | None:
    return None if not values else round(float(np.percentile(np.asarray(values), q)), 4)


def dbfs(value: float) -> float:
    return round(max(-120.0, 20.0 * np.log10(max(value, 1e-6))), 1)


@dataclass
class StreamReport:
    """What one stream did, returned by `Pipeline.stop()` and shown on `status`."""

    samples: int = 0
    windows: int = 0
    skipped_windows: int = 0
    failed_windows: int = 0
    overruns: int = 0
    input_overflows: int = 0
    nonfinite_samples: int = 0
    clipped_samples: int = 0
    reconnects: int = 0
    gap_seconds: float = 0.0  # input missed while a live source reconnected
    loops: int = 0  # a finite input started again (loop)
    events: int = 0  # starts, provisional ones included
    confirmed_events: int = 0  # events that passed the confirmation rule (stream.events)
    hop_latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_HISTORY))
    event_latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_HISTORY))
    confirm_latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_HISTORY))

    def counters(self) -> dict[str, int | float]:
        return {"samples": self.samples, "windows": self.windows, "skipped_windows": self.skipped_windows,
                "failed_windows": self.failed_windows, "overruns": self.overruns,
                "input_overflows": self.input_overflows, "nonfinite_samples": self.nonfinite_samples,
                "reconnects": self.reconnects, "gap_seconds": round(self.gap_seconds, 3), "loops": self.loops,
                "events": self.events, "confirmed_events": self.confirmed_events}

    def latency(self) -> dict[str, float | None]:
        return {"hop_p50": percentile(self.hop_latencies, 50), "hop_p95": percentile(self.hop_latencies, 95),
                "event_p50": percentile(self.event_latencies, 50), "event_p95": percentile(self.event_latencies, 95),
                "confirmed_p50": percentile(self.confirm_latencies, 50),
                "confirmed_p95": percentile(self.confirm_latencies, 95)}


class StatusReporter:
    """One stream's report and `status` messages, read from the stream's parts without changing them.

    The stream's runner records into `report` what only it sees (latencies, events) and counts in
    `read_overruns` the windows it could not read from the ring; its thread calls `message()` when
    `due()`.
    """

    def __init__(self, name: str, spec: str, source: Source, ring: RingBuffer, scheduler: WindowScheduler,
                 worker: InferenceWorker, detector: EventDetector, stitcher: Stitcher, config: Config,
                 num_classes: int, backend: str, dropped: Callable[[], dict[str, int]], sink_counters: Callable[[], dict[str, int]],
                 mqtt_counters: Callable[[], dict | None], inference_counters: Callable[[], dict | None],
                 loudness: LoudnessDetector | None):
        self.name = name
        self.spec = spec
        self.source = source
        self.ring = ring
        self.scheduler = scheduler
        self.worker = worker
        self.detector = detector
        self.stitcher = stitcher
        self.config = config
        self.num_classes = num_classes
        self.backend = backend  # the engine in use ("auto" in the config resolves to one)
        self.dropped = dropped  # messages the publisher could not send, per topic
        self.sink_counters = sink_counters  # what the sinks (shared by every stream) wrote and failed to write
        self.mqtt_counters = mqtt_counters  # the MQTT output's link and queue (None without one)
        self.inference_counters = inference_counters  # served inference's retries and lost windows (None in-process)
        self.loudness = loudness  # the stream's loudness trigger, if on
        self.report = StreamReport()
        self.read_overruns = 0
        self._counting_worker = True  # until the stream leaves the worker, whose counters then are gone
        self._due = 0.0
        self._rate_mark = (time.monotonic(), 0, 0)  # (time, windows, samples) at the last status

    def due(self) -> bool:
        return time.monotonic() >= self._due

    def refresh(self) -> StreamReport:
        """Bring the report's counters up to date (thread-safe reads of the source and worker)."""
        stats = self.source.stats
        report = self.report
        report.samples = stats.samples
        report.input_overflows = stats.input_overflows + stats.staging_overruns
        report.nonfinite_samples = stats.nonfinite_samples
        report.clipped_samples = stats.clipped_samples
        report.reconnects = stats.reconnects
        report.gap_seconds = stats.gap_seconds
        report.loops = stats.loops
        report.overruns = self.scheduler.skipped + self.read_overruns
        if self._counting_worker:
            counters = self.worker.counters(self.name)
            report.windows = counters.processed
            report.failed_windows = counters.failed
            report.skipped_windows = counters.skipped + report.overruns
        return report

    def leave_worker(self) -> None:
        """Count the worker's windows one last time, before the stream leaves the worker."""
        self.refresh()
        self._counting_worker = False

    def message(self, error: str | None) -> dict:
        """The `status` body now; `error` is the stream's newest error, shown unless the source has one."""
        now = time.monotonic()
        self._due = now + STATUS_PERIOD
        report = self.refresh()
        mark_time, mark_windows, mark_samples = self._rate_mark
        elapsed = max(now - mark_time, 1e-6)
        self._rate_mark = (now, report.windows, report.samples)
        stats = self.source.stats
        recent = self._recent_audio(SAMPLE_RATE)
        return {
            "source": self.spec,
            "source_state": {"starting": "running", "stopped": "ended"}.get(stats.state, stats.state),
            "error": stats.last_error or error,
            "sample_rate": SAMPLE_RATE,
            "input_rate": stats.input_rate,
            "level_dbfs": dbfs(float(np.sqrt(np.mean(recent ** 2)))) if recent.size else -120.0,
            "peak_dbfs": dbfs(float(np.abs(recent).max())) if recent.size else -120.0,
            "stream_seconds": round(self.ring.end / SAMPLE_RATE, 3),
            "hop": self.config.windows.hop,
            "window": WINDOW_SAMPLES / SAMPLE_RATE,
            "model": self.config.model.path or "default",
            "backend": self.backend,
            "device": self.config.model.device,
            "num_classes": self.num_classes,
            "thresholds": {t.name: [t.on, t.off] for t in self.detector.targets},
            "final_upto": self.stitcher.final_upto,
            "rates": {"windows_per_s": round((report.windows - mark_windows) / elapsed, 3),
                      "audio_seconds_per_s": round((report.samples - mark_samples) / SAMPLE_RATE / elapsed, 3)},
            "counters": report.counters(),
            "dropped": self.dropped(),
            "sinks": self.sink_counters(),
            "mqtt": self.mqtt_counters(),
            "inference": self.inference_counters(),
            "loudness": None if self.loudness is None else {
                "level_dbfs": round(self.loudness.level, 1), "threshold_dbfs": self.loudness.on_level,
                "off_dbfs": self.loudness.off_level, "weighting": self.config.loudness.weighting},
            "queue": self.worker.pending(),
            "latency": report.latency(),
        }

    def _recent_audio(self, n: int) -> np.ndarray:
        end = self.ring.end
        try:
            return self.ring.read(max(self.ring.oldest, end - n), end)
        except Overrun:
            return np.zeros(0, dtype=np.float32)
