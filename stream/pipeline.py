"""The live pipeline: the object that owns every thread and wires the steps together.

    source -> ring -> windows -> worker -> stitcher -> events -> sinks + publisher (+ listeners)

Threads: each source owns its capture thread(s); each stream has one runner thread (schedules its
windows from the ring, hands them to the worker, and turns the worker's results into a stitched
timeline, events and messages); one inference worker serves every stream. `Pipeline.start()` starts
them, `Pipeline.stop()` stops the sources, lets each stream finish the windows already captured
(open events get their offset), stops the worker, flushes the sinks, closes the publisher, and
returns the counters.

Messages follow docs/schema.md (bodies built by stream.messages). Per stream: `scores` after every
window, `mel` once per hop, `event` whenever an event starts, changes or ends, `status` once a second
(built by the stream's stream.status.StatusReporter). Listeners see every message body as well; the
CLI prints events from them.
"""

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from htsat_live.model import HOP_LENGTH, N_FFT, SAMPLE_RATE, SAMPLES_PER_FRAME
from htsat_live.stream.capture import Source, open_source
from htsat_live.stream.config import Config
from htsat_live.stream.events import ConfirmedView, EventDetector
from htsat_live.stream.loudness import LoudnessDetector
from htsat_live.stream.messages import (
    TOPICS,
    event_message,
    mel_message,
    scores_message,
)
from htsat_live.stream.ring import Overrun, RingBuffer
from htsat_live.stream.status import StatusReporter, StreamReport
from htsat_live.stream.stitch import Stitcher, TimelineUpdate
from htsat_live.stream.windows import Window, WindowScheduler
from htsat_live.stream.inference.worker import InferenceWorker, Job, Result

MEL_CONTEXT = 2  # columns of audio read before the first column sent, so its STFT frame is complete
MEL_CHUNK = 500  # log-mel columns computed per front-end call (5 s)
POLL_SECONDS = 0.01  # longest a stream thread sleeps before looking at its ring again

log = logging.getLogger(__name__)

Listener = Callable[[str, str, dict], None]  # (topic, stream, body)


class StreamRunner:
    """One stream: reads windows from its ring, submits them, and turns results into messages.

    Its `reporter` (stream.status) keeps the stream's report and builds its `status` messages. All of
    its state is touched only by its own thread, except the counters read for reports.
    """

    def __init__(self, name: str, spec: str, source: Source, ring: RingBuffer, config: Config, model,
                 worker: InferenceWorker, emit: Callable[[str, str, dict], None], fast: bool,
                 dropped: Callable[[], dict[str, int]], sink_counters: Callable[[], dict[str, int]],
                 mqtt_counters: Callable[[], dict | None], inference_counters: Callable[[], dict | None],
                 window_offset: int = 0):
        self.name = name
        self.spec = spec
        self.source = source
        self.ring = ring
        self.config = config
        self.model = model
        self.worker = worker
        self.emit = emit
        self.fast = fast
        self.scheduler = WindowScheduler(config.windows.hop, offset=window_offset)
        self.stitcher = Stitcher(model.num_classes)
        self.detector = EventDetector.from_config(config.events, model.labels, model.thresholds, model.median_frames,
                                                  ring.wall_time)
        self.loudness = (LoudnessDetector(config.loudness, self.detector.new_id, ring.wall_time)
                         if config.loudness.enabled else None)
        self._loudness_position = 0  # next stream sample the loudness detector takes
        self.confirmed = ConfirmedView()  # counts the confirmed starts and their latencies
        self.reporter = StatusReporter(name, spec, source, ring, self.scheduler, worker, self.detector, self.stitcher,
                                       config, model.num_classes, model.backend.name, dropped, sink_counters,
                                       mqtt_counters, inference_counters, self.loudness)
        self.scheduled_stop = 0  # end of the newest window handed to the worker (fast feeding follows it)
        self._results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self._threshold_changes: queue.SimpleQueue[tuple[str, float]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mel_next = 0  # next log-mel column to send
        self._last_clipwise = np.zeros(model.num_classes, dtype=np.float32)  # [C]
        self._last_window: Window | None = None
        self._error: str | None = None
        self.ended = threading.Event()  # set when the stream has finished (source ended or stopped)
        worker.add_stream(name, self._results.put)

    @property
    def report(self) -> StreamReport:
        """The stream's counters and latencies; the runner records its latencies and events into it."""
        return self.reporter.report

    # --- lifecycle (called by the Pipeline) ------------------------------------------------------

    def start(self) -> None:
        self.source.start(self.ring)
        self._thread = threading.Thread(target=self._run_guarded, name=f"stream {self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop capturing; the thread finishes the windows already captured (at most `timeout` s)."""
        self.source.stop()
        if self._thread is not None:  # a runner that never started has nothing to finish
            self.ended.wait(timeout)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.reporter.leave_worker()
        self.worker.remove_stream(self.name)

    # --- thread ---------------------------------------------------------------------------------

    def _run_guarded(self) -> None:
        try:
            self._run()
        except Exception as error:
            log.exception("stream %s failed: %s: %s", self.name, type(error).__name__, error)
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
                self._measure_loudness()
                if closed:
                    self._schedule_tail()
                    finishing = True
            if self.reporter.due():
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
            self.reporter.read_overruns += 1
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
            log.exception("stream %s: the result of window %d could not be used: %s: %s", self.name,
                          result.job.window.index, type(error).__name__, error)
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
        if self.loudness is not None:
            self._measure_loudness(at_least=1)
            self._send_events(self.loudness.flush())
        self._send_status()

    def _measure_loudness(self, at_least: int = 0) -> None:
        """Give the loudness detector the audio captured since its last turn (once a level window or more
        is there, or `at_least` samples at the stream's end)."""
        if self.loudness is None or self.ring.end - self._loudness_position < max(at_least, self.loudness.window):
            return
        start = max(self._loudness_position, self.ring.oldest)  # audio the ring lost is lost to it too
        try:
            audio = self.ring.read(start, self.ring.end)
        except Overrun:
            return  # overwritten while read: the next turn starts from the oldest sample
        self._loudness_position = start + audio.shape[0]
        self._send_events(self.loudness.update(audio))

    # --- messages -------------------------------------------------------------------------------

    def _send_scores(self, update: TimelineUpdate) -> None:
        window = self._last_window
        self.emit("scores", self.name, scores_message(
            update, self._last_clipwise, self.model.labels, self.config.publish.top_k,
            self.ring.wall_time(round(update.start * SAMPLES_PER_FRAME)), window.start, window.samples,
            self.config.windows.hop, self.ring.wall_time(window.stop - 1)))

    def _send_events(self, events) -> None:
        for event in events:
            body = event_message(event)
            if event.state == "start":
                self.report.events += 1
                self.report.event_latencies.append(event.latency)
            for shown in self.confirmed.take(self.name, body):
                if shown["state"] == "start":
                    self.report.confirmed_events += 1
                    self.report.confirm_latencies.append(shown["confirm_latency"])
            self.emit("event", self.name, body)

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

    def _send_status(self) -> None:
        self.emit("status", self.name, self.reporter.message(self._error))


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
    the config's `source.inputs`, else its `source.input`. Streams are named by `source.names` when given,
    else by `source.name` or their input (with `#position` when there are several).
    `inference` runs the windows instead of `model` (anything with `predict`, `frames_for` and `counters`,
    e.g. stream.inference.cluster.ServeInference); the model still gives the labels, thresholds and `mel` columns.
    Every message goes to `sinks.handle(topic, stream, body)` (a stream.sinks.Sinks, if given),
    `publisher.send(topic, stream, body)` (a stream.publish.Publisher, if given),
    `mqtt.handle(topic, stream, body)` (a stream.mqtt.MqttOutput, if given; it may set thresholds),
    `metrics.handle(topic, stream, body)` (a stream.metrics.Metrics, if given) and each listener, one message
    at a time. `stop()` closes the sinks, the publisher, the MQTT output and
    the metrics endpoint.
    """

    def __init__(self, config: Config, model, inputs: list[str | Source] | None = None, publisher=None,
                 sinks=None, listeners: list[Listener] = (), max_batch: int = 8, max_pending: int = 2, mqtt=None,
                 metrics=None, inference=None):
        self.config = config
        self.model = model
        self.publisher = publisher
        self.sinks = sinks
        self.mqtt = mqtt
        self.metrics = metrics
        self._outputs: list[Listener] = (([sinks.handle] if sinks is not None else [])
                                         + ([publisher.send] if publisher is not None else [])
                                         + ([mqtt.handle] if mqtt is not None else [])
                                         + ([metrics.handle] if metrics is not None else []) + list(listeners))
        if mqtt is not None:
            mqtt.set_threshold = self.set_stream_threshold
        self.inference = inference
        self.worker = InferenceWorker(model if inference is None else inference, max_batch=max_batch,
                                      max_pending=max_pending)
        self.runners: list[StreamRunner] = []
        self._lock = threading.Lock()  # one message at a time into the outputs
        inputs = list(inputs or config.source.inputs or [config.source.input or None])
        names = config.source.names
        if names and len(names) != len(inputs):
            raise ValueError(f"source.names: {len(names)} names for {len(inputs)} inputs")
        fast = config.source.fast
        hop = round(config.windows.hop * SAMPLE_RATE)
        for position, given in enumerate(inputs):
            spec = given.description if isinstance(given, Source) else given
            if names:
                name = names[position]
            else:
                name = config.source.name or stream_name(spec)
                if len(inputs) > 1:
                    name = f"{name}#{position}"
            ring = RingBuffer(int(config.source.ring_seconds * SAMPLE_RATE), SAMPLE_RATE)
            holder: list[StreamRunner] = []
            offset = position * hop // len(inputs) if config.windows.stagger else 0  # samples (windows.stagger)
            if isinstance(given, Source):
                source = given
            else:  # fast feeding stays just ahead of the next window's end
                source = open_source(given, fast=fast, consumer_position=lambda h=holder: h[0].scheduled_stop,
                                     max_ahead=hop + offset + SAMPLE_RATE // 4, loop=config.source.loop)
            runner = StreamRunner(name, spec or "mic", source, ring, config, model, self.worker, self._emit, fast,
                                  self._dropped, self._sink_counters, self._mqtt_counters, self._inference_counters,
                                  offset)
            if sinks is not None:  # event clips are cut from the stream's ring
                sinks.attach(name, ring, [target.name for target in runner.detector.targets])
            holder.append(runner)
            self.runners.append(runner)

    def _emit(self, topic: str, stream: str, body: dict) -> None:
        with self._lock:
            for output in self._outputs:
                try:
                    output(topic, stream, body)
                except Exception as error:  # an output that fails loses its message, never the stream
                    log.exception("%r failed on a %s message: %s: %s", output, topic, type(error).__name__, error)

    def _dropped(self) -> dict[str, int]:
        return dict.fromkeys(TOPICS, 0) if self.publisher is None else dict(self.publisher.dropped)

    def _sink_counters(self) -> dict[str, int]:
        return {} if self.sinks is None else self.sinks.counters()

    def _mqtt_counters(self) -> dict | None:
        return None if self.mqtt is None else self.mqtt.counters()

    def _inference_counters(self) -> dict | None:
        return None if self.inference is None else self.inference.counters()

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

    def set_stream_threshold(self, stream: str, target: str, on: float) -> None:
        """Change a detection target's on-threshold in one stream, live (ValueError for an unknown one)."""
        runner = next((r for r in self.runners if r.name == stream), None)
        if runner is None:
            raise ValueError(f"unknown stream {stream!r}")
        runner.set_threshold(target, on)

    def stop(self, timeout: float = 30.0) -> dict[str, StreamReport]:
        """Stop capturing, finish what was captured, end open events, flush outputs; the reports."""
        for runner in self.runners:  # stop all captures first, so the streams end at about one moment
            runner.source.stop()
        for runner in self.runners:
            runner.stop(timeout)
        self.worker.stop()
        for output in (self.sinks, self.publisher, self.mqtt, self.metrics):
            if output is not None:
                output.close()
        return {runner.name: runner.report for runner in self.runners}
