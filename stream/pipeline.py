"""The live pipeline: the object that owns every thread and wires the steps together.

    source -> ring -> windows -> worker -> stitcher -> events -> sinks + publisher (+ listeners)

Threads: each source owns its capture thread(s); each stream has one runner thread (schedules its
windows from the ring, hands them to the worker, and turns the worker's results into a stitched
timeline, events and messages); one inference worker serves every stream. `Pipeline.start()` starts
them, `Pipeline.stop()` stops the sources, lets each stream finish the windows already captured
(open events get their offset), stops the worker, flushes the sinks, closes the publisher, and
returns the counters.

Messages follow docs/schema.md. Per stream: `scores` after every window, `mel` once per hop, `event`
whenever an event starts, changes or ends, `status` once a second. Listeners see every message body
as well; the CLI prints events from them.
"""

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from htsat_live.model import (
    HOP_LENGTH,
    N_FFT,
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    WINDOW_SAMPLES,
)
from htsat_live.stream.capture import Source, open_source
from htsat_live.stream.config import Config
from htsat_live.stream.events import EventDetector
from htsat_live.stream.publish import TOPICS, event_message, mel_message, scores_message
from htsat_live.stream.ring import Overrun, RingBuffer
from htsat_live.stream.stitch import Stitcher, TimelineUpdate
from htsat_live.stream.windows import Window, WindowScheduler
from htsat_live.stream.worker import InferenceWorker, Job, Result

MEL_CONTEXT = 2  # columns of audio read before the first column sent, so its STFT frame is complete
MEL_CHUNK = 500  # log-mel columns computed per front-end call (5 s)
STATUS_PERIOD = 1.0  # seconds between status messages
LATENCY_HISTORY = 100  # latencies kept for the p50/p95 on status
POLL_SECONDS = 0.01  # longest a stream thread sleeps before looking at its ring again

log = logging.getLogger(__name__)

Listener = Callable[[str, str, dict], None]  # (topic, stream, body)


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
    events: int = 0
    hop_latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_HISTORY))
    event_latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_HISTORY))

    def counters(self) -> dict[str, int]:
        return {"samples": self.samples, "windows": self.windows, "skipped_windows": self.skipped_windows,
                "failed_windows": self.failed_windows, "overruns": self.overruns,
                "input_overflows": self.input_overflows, "nonfinite_samples": self.nonfinite_samples,
                "reconnects": self.reconnects, "events": self.events}

    def latency(self) -> dict[str, float | None]:
        return {"hop_p50": percentile(self.hop_latencies, 50), "hop_p95": percentile(self.hop_latencies, 95),
                "event_p50": percentile(self.event_latencies, 50), "event_p95": percentile(self.event_latencies, 95)}


class StreamRunner:
    """One stream: reads windows from its ring, submits them, and turns results into messages.

    All of its state is touched only by its own thread, except the counters read for reports.
    """

    def __init__(self, name: str, spec: str, source: Source, ring: RingBuffer, config: Config, model,
                 worker: InferenceWorker, emit: Callable[[str, str, dict], None], fast: bool,
                 dropped: Callable[[], dict[str, int]]):
        self.name = name
        self.spec = spec
        self.source = source
        self.ring = ring
        self.config = config
        self.model = model
        self.worker = worker
        self.emit = emit
        self.fast = fast
        self.dropped = dropped  # messages the publisher could not send, per topic
        self.scheduler = WindowScheduler(config.windows.hop)
        self.stitcher = Stitcher(model.num_classes)
        self.detector = EventDetector.from_config(config.events, model.labels, model.thresholds, model.median_frames,
                                                  ring.wall_time)
        self.report = StreamReport()
        self.scheduled_stop = 0  # end of the newest window handed to the worker (fast feeding follows it)
        self._results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self._threshold_changes: queue.SimpleQueue[tuple[str, float]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._read_overruns = 0
        self._mel_next = 0  # next log-mel column to send
        self._last_clipwise = np.zeros(model.num_classes, dtype=np.float32)  # [C]
        self._last_window: Window | None = None
        self._error: str | None = None
        self._status_due = 0.0
        self._rate_mark = (time.monotonic(), 0, 0)  # (time, windows, samples) at the last status
        self.ended = threading.Event()  # set when the stream has finished (source ended or stopped)
        worker.add_stream(name, self._results.put)
        self._registered = True

    # --- lifecycle (called by the Pipeline) ------------------------------------------------------

    def start(self) -> None:
        self.source.start(self.ring)
        self._thread = threading.Thread(target=self._run_guarded, name=f"stream {self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop capturing; the thread finishes the windows already captured (at most `timeout` s)."""
        self.source.stop()
        self.ended.wait(timeout)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.refresh_report()
        self.worker.remove_stream(self.name)
        self._registered = False

    # --- thread ---------------------------------------------------------------------------------

    def _run_guarded(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("stream %s failed", self.name)
            self._error = "stream thread failed; see the log"
        finally:
            self.ended.set()

    def set_threshold(self, target: str, on: float) -> None:
        """Queue a new on-threshold for `target`; the stream's thread applies it before its next update."""
        if target not in {t.name for t in self.detector.targets}:
            raise ValueError(f"unknown detection target {target!r}")
        if not 0.0 <= on <= 1.0:
            raise ValueError(f"threshold for {target!r} must be in 0..1, got {on}")
        self._threshold_changes.put((target, on))

    def _apply_threshold_changes(self) -> None:
        while True:
            try:
                target, on = self._threshold_changes.get_nowait()
            except queue.Empty:
                return
            self.detector.set_threshold(target, on)

    def _run(self) -> None:
        finishing = False
        while not self._stop.is_set():
            self._apply_threshold_changes()
            self._take_results()
            if not finishing:
                closed = self.ring.closed  # read before scheduling: every sample written before it is seen
                self._schedule()
                if closed:
                    self._schedule_tail()
                    finishing = True
            if time.monotonic() >= self._status_due:
                self._send_status()
            if finishing and self._in_flight() == 0:
                break
            try:
                self._handle(self._results.get(timeout=POLL_SECONDS))
            except queue.Empty:
                pass
        self._take_results()
        self._finish()

    def _in_flight(self) -> int:
        counters = self.worker.counters(self.name)
        return counters.submitted - counters.processed - counters.failed - counters.skipped

    def _schedule(self) -> None:
        for window in self.scheduler.due(self.ring.end, self.ring.oldest):
            self._submit(window)

    def _schedule_tail(self) -> None:
        """At the end of the stream, one zero-padded window covers the samples after the last window."""
        if self.ring.end > self.scheduled_stop:
            k = self.scheduler.next_index
            start = self.scheduler.start_of(k)
            if start >= self.ring.oldest:
                self._submit(Window(k, start, self.ring.end, self.scheduler.start_of(k + 1)))

    def _submit(self, window: Window) -> None:
        try:
            wave = self.ring.read(window.start, window.stop)  # [window.samples]
        except Overrun:
            self._read_overruns += 1
            return
        job = Job(self.name, window, wave, ready_wall=self.ring.wall_time(window.stop - 1))
        if self.fast:  # a file fed as fast as possible waits for the worker instead of skipping
            while not self.worker.submit(job, wait=True, timeout=0.1):
                self._take_results()
                if self._stop.is_set():
                    return
        else:
            self.worker.submit(job)
        self.scheduled_stop = window.stop
        self._send_mel(window.stop)

    def _take_results(self) -> None:
        while True:
            try:
                result = self._results.get_nowait()
            except queue.Empty:
                return
            self._handle(result)

    def _handle(self, result: Result) -> None:
        if result.error is not None:
            self._error = result.error
            return
        try:
            self._use(result)
        except Exception as error:  # one window's result that cannot be used must not end the stream
            log.exception("stream %s: the result of window %d could not be used", self.name, result.job.window.index)
            self._error = f"window {result.job.window.index}: {type(error).__name__}: {error}"

    def _use(self, result: Result) -> None:
        window = result.job.window
        update = self.stitcher.add(result.framewise, window.start, result.valid_frames, window.next_start)
        self._last_clipwise = result.clipwise
        self._last_window = window
        self._send_scores(update)
        self.report.hop_latencies.append(time.time() - result.job.ready_wall)
        self._send_events(self.detector.update(update))

    def _finish(self) -> None:
        update = self.stitcher.finish()
        if self._last_window is not None:
            self._send_scores(update)
        self._send_events(self.detector.update(update) + self.detector.flush())
        self._send_status()

    # --- messages -------------------------------------------------------------------------------

    def _send_scores(self, update: TimelineUpdate) -> None:
        window = self._last_window
        self.emit("scores", self.name, scores_message(
            update, self._last_clipwise, self.model.labels, self.config.publish.top_k,
            self.ring.wall_time(round(update.start * SAMPLES_PER_FRAME)), window.start, window.samples,
            self.config.windows.hop))

    def _send_events(self, events) -> None:
        for event in events:
            if event.state == "start":
                self.report.events += 1
                self.report.event_latencies.append(event.latency)
            self.emit("event", self.name, event_message(event))

    def _send_mel(self, stop: int) -> None:
        """Log-mel columns from the last one sent up to the newest whose STFT frame ends by `stop`."""
        last = (stop - N_FFT // 2) // HOP_LENGTH  # column j is centred on sample j * 320
        oldest = self.ring.oldest  # the context before the first column must still be held
        first = max(self._mel_next, 0 if oldest == 0 else -(-oldest // HOP_LENGTH) + MEL_CONTEXT)
        if last < first:
            return
        columns = []
        for chunk_first in range(first, last + 1, MEL_CHUNK):  # the front end takes at most 10 s at once
            chunk_last = min(last, chunk_first + MEL_CHUNK - 1)
            begin = max(0, (chunk_first - MEL_CONTEXT) * HOP_LENGTH)  # a few columns of context before
            try:
                wave = self.ring.read(begin, chunk_last * HOP_LENGTH + N_FFT // 2)
            except Overrun:
                return
            offset = begin // HOP_LENGTH
            try:
                mel = self.model.logmel(wave)[0]  # [T, 64]; column i is centred on sample begin + i * 320
            except ValueError as error:  # audio the front end refuses costs its columns, not the stream
                self._error = f"log-mel of samples {begin}..{chunk_last * HOP_LENGTH}: {error}"
                self._mel_next = last + 1
                return
            columns.append(mel[chunk_first - offset:chunk_last - offset + 1])  # [n, 64]
        columns = np.concatenate(columns)  # [last - first + 1, 64]
        self._mel_next = last + 1
        self.emit("mel", self.name, mel_message(first, columns, self.ring.wall_time(first * HOP_LENGTH)))

    def refresh_report(self) -> StreamReport:
        """Bring the report's counters up to date (thread-safe reads of the source and worker)."""
        stats = self.source.stats
        report = self.report
        report.samples = stats.samples
        report.input_overflows = stats.input_overflows + stats.staging_overruns
        report.nonfinite_samples = stats.nonfinite_samples
        report.clipped_samples = stats.clipped_samples
        report.reconnects = stats.reconnects
        report.overruns = self.scheduler.skipped + self._read_overruns
        if self._registered:
            counters = self.worker.counters(self.name)
            report.windows = counters.processed
            report.failed_windows = counters.failed
            report.skipped_windows = counters.skipped + report.overruns
        return report

    def _send_status(self) -> None:
        now = time.monotonic()
        self._status_due = now + STATUS_PERIOD
        report = self.refresh_report()
        mark_time, mark_windows, mark_samples = self._rate_mark
        elapsed = max(now - mark_time, 1e-6)
        self._rate_mark = (now, report.windows, report.samples)
        stats = self.source.stats
        recent = self._recent_audio(SAMPLE_RATE)
        self.emit("status", self.name, {
            "source": self.spec,
            "source_state": {"starting": "running", "stopped": "ended"}.get(stats.state, stats.state),
            "error": stats.last_error or self._error,
            "sample_rate": SAMPLE_RATE,
            "input_rate": stats.input_rate,
            "level_dbfs": dbfs(float(np.sqrt(np.mean(recent ** 2)))) if recent.size else -120.0,
            "peak_dbfs": dbfs(float(np.abs(recent).max())) if recent.size else -120.0,
            "stream_seconds": round(self.ring.end / SAMPLE_RATE, 3),
            "hop": self.config.windows.hop,
            "window": WINDOW_SAMPLES / SAMPLE_RATE,
            "model": self.config.model.path or "default",
            "backend": self.config.model.backend,
            "device": self.config.model.device,
            "num_classes": self.model.num_classes,
            "thresholds": {t.name: [t.on, t.off] for t in self.detector.targets},
            "final_upto": self.stitcher.final_upto,
            "rates": {"windows_per_s": round((report.windows - mark_windows) / elapsed, 3),
                      "audio_seconds_per_s": round((report.samples - mark_samples) / SAMPLE_RATE / elapsed, 3)},
            "counters": report.counters(),
            "dropped": self.dropped(),
            "queue": self.worker.pending(),
            "latency": report.latency(),
        })

    def _recent_audio(self, n: int) -> np.ndarray:
        end = self.ring.end
        try:
            return self.ring.read(max(self.ring.oldest, end - n), end)
        except Overrun:
            return np.zeros(0, dtype=np.float32)


def stream_name(spec: str | None) -> str:
    """A stream id derived from a SOURCE: `mic`, `mic:NAME`, the URL of `ffmpeg:URL`, a file's name."""
    if spec is None or spec == "" or spec.startswith("mic"):
        return spec or "mic"
    if spec.startswith("ffmpeg:"):
        return spec[len("ffmpeg:"):]
    return Path(spec).name


class Pipeline:
    """Owns the sources, the stream threads and the inference worker of one or more streams.

    `inputs` are SOURCE strings (see stream.capture.open_source) or ready Source objects; default
    the config's `source.input`. Every message goes to `sinks.handle(topic, stream, body)` (a
    stream.sinks.Sinks, if given), `publisher.send(topic, stream, body)` (a stream.publish.Publisher,
    if given) and each listener, one message at a time.
    """

    def __init__(self, config: Config, model, inputs: list[str | Source] | None = None, publisher=None,
                 sinks=None, listeners: list[Listener] = (), max_batch: int = 8, max_pending: int = 2):
        self.config = config
        self.model = model
        self.publisher = publisher
        self.sinks = sinks
        self._outputs: list[Listener] = (([sinks.handle] if sinks is not None else [])
                                         + ([publisher.send] if publisher is not None else []) + list(listeners))
        self.worker = InferenceWorker(model, max_batch=max_batch, max_pending=max_pending)
        self.runners: list[StreamRunner] = []
        self._lock = threading.Lock()  # one message at a time into the outputs
        inputs = list(inputs) if inputs else [config.source.input or None]
        fast = config.source.fast
        hop = round(config.windows.hop * SAMPLE_RATE)
        for position, given in enumerate(inputs):
            spec = given.description if isinstance(given, Source) else given
            name = config.source.name or stream_name(spec)
            if len(inputs) > 1:
                name = f"{name}#{position}"
            ring = RingBuffer(int(config.source.ring_seconds * SAMPLE_RATE), SAMPLE_RATE)
            holder: list[StreamRunner] = []
            if isinstance(given, Source):
                source = given
            else:
                source = open_source(given, fast=fast, consumer_position=lambda h=holder: h[0].scheduled_stop,
                                     max_ahead=hop + SAMPLE_RATE // 4)
            runner = StreamRunner(name, spec or "mic", source, ring, config, model, self.worker, self._emit, fast,
                                  self._dropped)
            if sinks is not None:
                sinks.attach(name, ring)  # event clips are cut from the stream's ring
            holder.append(runner)
            self.runners.append(runner)

    def _emit(self, topic: str, stream: str, body: dict) -> None:
        with self._lock:
            for output in self._outputs:
                try:
                    output(topic, stream, body)
                except Exception:  # an output that fails loses its message, never the stream
                    log.exception("%r failed on a %s message", output, topic)

    def _dropped(self) -> dict[str, int]:
        return dict.fromkeys(TOPICS, 0) if self.publisher is None else dict(self.publisher.dropped)

    def start(self) -> None:
        self.worker.start()
        for runner in self.runners:
            runner.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every stream ended on its own (files); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for runner in self.runners:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not runner.ended.wait(left):
                return False
        return True

    def set_threshold(self, target: str, on: float) -> None:
        """Change a detection target's on-threshold in every stream, live (ValueError for an unknown one)."""
        for runner in self.runners:
            runner.set_threshold(target, on)

    def stop(self, timeout: float = 30.0) -> dict[str, StreamReport]:
        """Stop capturing, finish what was captured, end open events, flush outputs; the reports."""
        for runner in self.runners:  # stop all captures first, so the streams end at about one moment
            runner.source.stop()
        for runner in self.runners:
            runner.stop(timeout)
        self.worker.stop()
        for output in (self.sinks, self.publisher):
            if output is not None:
                output.close()
        return {runner.name: runner.report for runner in self.runners}
