"""The status of one stream: its report and its once-a-second `status` message.

`StreamReport` holds what a stream counted (samples, windows, overruns, events, ...) and its recent
hop and event latencies; `Pipeline.stop()` returns one per stream. `StatusReporter` keeps a
stream's report up to date from the stream's parts and builds the `status` body of
docs/schema.md: the counters, the latency percentiles, the rates since the previous status, the
level of the last second of input, the settings in force, and what the pipeline's outputs
(`output_sections`) and its served inference counted.
"""

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from htsat_live.model import SAMPLE_RATE, WINDOW_SAMPLES
from htsat_live.stream.messages import TOPICS
from htsat_live.stream.output import Output
from htsat_live.stream.ring import Overrun

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
    gated_windows: int = 0  # below the level gate (windows.gate_dbfs): not run, scored 0
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
        return {
            "samples": self.samples,
            "windows": self.windows,
            "skipped_windows": self.skipped_windows,
            "gated_windows": self.gated_windows,
            "failed_windows": self.failed_windows,
            "overruns": self.overruns,
            "input_overflows": self.input_overflows,
            "nonfinite_samples": self.nonfinite_samples,
            "reconnects": self.reconnects,
            "gap_seconds": round(self.gap_seconds, 3),
            "loops": self.loops,
            "events": self.events,
            "confirmed_events": self.confirmed_events,
        }

    def latency(self) -> dict[str, float | None]:
        return {
            "hop_p50": percentile(self.hop_latencies, 50),
            "hop_p95": percentile(self.hop_latencies, 95),
            "event_p50": percentile(self.event_latencies, 50),
            "event_p95": percentile(self.event_latencies, 95),
            "confirmed_p50": percentile(self.confirm_latencies, 50),
            "confirmed_p95": percentile(self.confirm_latencies, 95),
        }


def output_sections(outputs: list[Output]) -> dict:
    """The keys of `status` the outputs fill (docs/schema.md): each output's counters under its `name`, merged
    where outputs share one; `dropped`, `sinks` and `mqtt` read zeros, {} and null without their output."""
    sections = {"dropped": dict.fromkeys(TOPICS, 0), "sinks": {}, "mqtt": None}
    for output in outputs:
        if output.name is not None:
            sections[output.name] = {**(sections.get(output.name) or {}), **output.counters()}
    return sections


class StatusReporter:
    """One stream's report and `status` messages, read from the stream and its pipeline without changing them.

    `stream` is the stream's runner (stream.pipeline.StreamRunner): its source, ring, scheduler, detector,
    stitcher and loudness trigger, and through `stream.pipeline` the config, model, worker, outputs and served
    inference that every stream shares. The runner records into `report` what only it sees (latencies,
    events) and counts in `read_overruns` the windows it could not read from the ring; its thread calls
    `message()` when `due()`.
    """

    def __init__(self, stream):
        self.stream = stream
        self.report = StreamReport()
        self.read_overruns = 0
        self._counting_worker = True  # until the stream leaves the worker, whose counters then are gone
        self._due = 0.0
        self._rate_mark = (time.monotonic(), 0, 0)  # (time, windows, samples) at the last status

    def due(self) -> bool:
        return time.monotonic() >= self._due

    def seconds_until_due(self) -> float:
        return self._due - time.monotonic()

    def refresh(self) -> StreamReport:
        """Bring the report's counters up to date (thread-safe reads of the source and worker)."""
        stream = self.stream
        stats = stream.source.stats
        report = self.report
        report.samples = stats.samples
        report.input_overflows = stats.input_overflows + stats.staging_overruns
        report.nonfinite_samples = stats.nonfinite_samples
        report.clipped_samples = stats.clipped_samples
        report.reconnects = stats.reconnects
        report.gap_seconds = stats.gap_seconds
        report.loops = stats.loops
        report.overruns = stream.scheduler.skipped + self.read_overruns
        if self._counting_worker:
            counters = stream.pipeline.worker.counters(stream.name)
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
        stream, pipeline = self.stream, self.stream.pipeline
        config, stats, loudness = pipeline.config, stream.source.stats, stream.loudness
        recent = self._recent_audio(SAMPLE_RATE)
        return {
            "source": stream.spec,
            "source_state": {"starting": "running", "stopped": "ended"}.get(stats.state, stats.state),
            "error": stats.last_error or error,
            "sample_rate": SAMPLE_RATE,
            "input_rate": stats.input_rate,
            "level_dbfs": dbfs(float(np.sqrt(np.mean(recent**2)))) if recent.size else -120.0,
            "peak_dbfs": dbfs(float(np.abs(recent).max())) if recent.size else -120.0,
            "stream_seconds": round(stream.ring.end / SAMPLE_RATE, 3),
            "hop": config.windows.hop,
            "window": WINDOW_SAMPLES / SAMPLE_RATE,
            "model": _model_setting(config.model.path),
            "backend": pipeline.model.backend.name,  # the engine in use ("auto" in the config resolves to one)
            "device": config.model.device,
            "num_classes": pipeline.model.num_classes,
            "thresholds": {t.name: [t.on, t.off] for t in stream.detector.targets},
            "final_upto": stream.stitcher.final_upto,
            "rates": {
                "windows_per_s": round((report.windows - mark_windows) / elapsed, 3),
                "audio_seconds_per_s": round((report.samples - mark_samples) / SAMPLE_RATE / elapsed, 3),
            },
            "counters": report.counters(),
            **output_sections(pipeline.outputs),
            "inference": None if pipeline.inference is None else pipeline.inference.counters(),
            "loudness": None
            if loudness is None
            else {
                "level_dbfs": round(loudness.level, 1),
                "threshold_dbfs": loudness.on_level,
                "off_dbfs": loudness.off_level,
                "weighting": config.loudness.weighting,
            },
            "queue": pipeline.worker.pending(),
            "latency": report.latency(),
        }

    def _recent_audio(self, n: int) -> np.ndarray:
        ring = self.stream.ring
        end = ring.end
        try:
            return ring.read(max(ring.oldest, end - n), end)
        except Overrun:
            return np.zeros(0, dtype=np.float32)


def _model_setting(path: str | tuple[str, ...]) -> str:
    """`model` of `status`: the model's path, an ensemble's paths joined by " + ", or "default"."""
    return " + ".join(path) if isinstance(path, tuple) else path or "default"
