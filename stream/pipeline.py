"""The live pipeline: the object that owns every thread and wires the steps together.

    source -> ring -> windows -> worker -> stitcher -> events -> outputs

Threads: each source owns its capture thread(s); each stream has one runner thread (schedules its
windows from the ring, hands them to the worker, and turns the worker's results into a stitched
timeline, events and messages); one inference worker serves every stream. `Pipeline.start()` starts
them, `Pipeline.stop()` stops the sources, lets each stream finish the windows already captured
(open events get their offset), stops the worker, closes the outputs, and returns the counters.

Messages follow docs/schema.md (bodies built by stream.messages). Per stream: `scores` after every
window, `mel` once per hop, `event` whenever an event starts, changes or ends (an EventMessage carrying
the detector's report), `status` once a second (built by the stream's stream.status.StatusReporter).
Each goes to every output of the pipeline (stream.output: the publisher, sinks, event store, MQTT,
metrics, the console, listeners), which the pipeline knows only by that interface.
"""

import logging
import queue
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from htsat_live.model import HOP_LENGTH, MODEL_FRAMES, N_FFT, SAMPLE_RATE, SAMPLES_PER_FRAME
from htsat_live.stream.capture import Source, open_source
from htsat_live.stream.config import Config
from htsat_live.stream.events import ConfirmedView, EventDetector
from htsat_live.stream.inference.worker import InferenceWorker, Job, Result
from htsat_live.stream.loudness import LoudnessDetector
from htsat_live.stream.messages import (
    EventMessage,
    Message,
    mel_message,
    scores_message,
)
from htsat_live.stream.output import Output, close_outputs
from htsat_live.stream.ring import Overrun, RingBuffer
from htsat_live.stream.status import StatusReporter, StreamReport
from htsat_live.stream.stitch import Stitcher, TimelineUpdate
from htsat_live.stream.windows import LevelGate, Window, WindowScheduler

MEL_CONTEXT = 2  # columns of audio read before the first column sent, so its STFT frame is complete
MEL_CHUNK = 500  # log-mel columns computed per front-end call (5 s)
POLL_SECONDS = 0.01  # shortest wait of a stream thread between looks at its ring (the only one for a fast source)
IDLE_SECONDS = 0.1  # longest wait of a real-time stream's thread with nothing due: how late it sees a stop
MAX_BATCH = 8  # windows the worker runs at once
# On a CPU a batch costs about what its windows cost one by one, and each of them waits for the whole batch:
# after a burst of windows, batches of 4 kept the hop latency p95 at half of what batches of 8 gave.
CPU_MAX_BATCH = 4
FAST_LEAD = SAMPLE_RATE // 4  # samples a fast-fed source may run past the end of the next window due

log = logging.getLogger(__name__)


class ThresholdChanges:
    """On-thresholds changed while the streams run (from MQTT, the GUI), on their way to each stream's detector.

    Each stream registers its detection targets (`add_stream`) before the pipeline starts. `set(stream,
    target, on)` checks a change (ValueError for an unknown stream or target, or `on` outside 0..1) and
    queues it, from any thread; the stream's own thread `take`s its changes before its next update.
    """

    def __init__(self):
        self._streams: dict[str, tuple[frozenset[str], queue.SimpleQueue]] = {}

    def add_stream(self, stream: str, targets: list[str]) -> None:
        self._streams[stream] = (frozenset(targets), queue.SimpleQueue())

    def set(self, stream: str, target: str, on: float) -> None:
        if stream not in self._streams:
            raise ValueError(f"unknown stream {stream!r}")
        targets, changes = self._streams[stream]
        if target not in targets:
            raise ValueError(f"unknown detection target {target!r}")
        if not 0.0 <= on <= 1.0:
            raise ValueError(f"threshold for {target!r} must be in 0..1, got {on}")
        changes.put((target, on))

    def take(self, stream: str) -> list[tuple[str, float]]:
        """The changes queued for `stream` since the last call, oldest first."""
        changes, taken = self._streams[stream][1], []
        while True:
            try:
                taken.append(changes.get_nowait())
            except queue.Empty:
                return taken


class StreamRunner:
    """One stream of `pipeline`: reads windows from its ring, submits them to the pipeline's worker, and turns
    the results into messages for the pipeline's outputs.

    It owns the stream's ring buffer (its `consumer_position` follows the windows handed to the worker, so
    that a source fed as fast as possible stays just ahead of them), stitcher, event detector and loudness
    trigger. Its `reporter` (stream.status) keeps the stream's report and builds its `status` messages. All
    of its state is touched only by its own thread, except the counters read for reports.

    With `windows.gate_dbfs` set, a window that stays below the gate (stream.windows.LevelGate) is not
    submitted: its frames score 0 and it goes through the stitcher, events and messages as a window whose
    model found nothing, flagged `gated`. It waits in `_held` until every window before it has come back
    from the worker (or was skipped there), so that the stitcher takes windows in order.
    """

    def __init__(self, pipeline: "Pipeline", name: str, spec: str, source: Source, scheduler: WindowScheduler):
        config, model = pipeline.config, pipeline.model
        self.pipeline = pipeline
        self.name = name
        self.spec = spec
        self.source = source
        self.scheduler = scheduler
        self.ring = RingBuffer(int(config.source.ring_seconds * SAMPLE_RATE), SAMPLE_RATE)
        self.ring.consumer_position = 0  # end of the newest window handed to the worker
        self.stitcher = Stitcher(model.num_classes)
        self.detector = EventDetector.from_config(
            config.events, model.labels, model.thresholds, model.median_frames, self.ring.wall_time
        )
        self.loudness = (
            LoudnessDetector(config.loudness, self.detector.new_id, self.ring.wall_time)
            if config.loudness.enabled
            else None
        )
        self._loudness_position = 0  # next stream sample the loudness detector takes
        self.confirmed = ConfirmedView()  # counts the confirmed starts and their latencies
        self.reporter = StatusReporter(self)
        self._results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mel_next = 0  # next log-mel column to send
        self._silent_mel: np.ndarray | None = None  # [bins]: the column of digital silence, once computed
        self._last_clipwise = np.zeros(model.num_classes, dtype=np.float32)  # [C]
        self._last_window: Window | None = None
        self._last_gated = False  # the newest window was gated
        self.gate = None if config.windows.gate_dbfs is None else LevelGate(config.windows.gate_dbfs)
        self._held: deque[Window] = deque()  # gated windows waiting for earlier windows, oldest first
        self._in_worker: deque[int] = deque()  # indices of the windows handed to the worker, not yet back
        self._submitted = 0  # windows handed to the worker
        self._returned = 0  # their results taken back (failed ones included)
        self._error: str | None = None
        self.ended = threading.Event()  # set when the stream has finished (source ended or stopped)
        pipeline.thresholds.add_stream(name, [target.name for target in self.detector.targets])
        pipeline.worker.add_stream(name, self._results.put)

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
        self.pipeline.worker.remove_stream(self.name)

    # --- thread ---------------------------------------------------------------------------------

    def _run_guarded(self) -> None:
        try:
            self._run()
        except Exception as error:
            log.exception("stream %s failed: %s: %s", self.name, type(error).__name__, error)
            self._error = "stream thread failed; see the log"
        finally:
            self.ended.set()

    def _apply_threshold_changes(self) -> None:
        for target, on in self.pipeline.thresholds.take(self.name):
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
                self._handle(self._results.get(timeout=POLL_SECONDS if finishing else self._idle_seconds()))
            except queue.Empty:
                pass
        self._take_results()
        self._finish()

    def _idle_seconds(self) -> float:
        """How long the thread may wait for a result before something else falls due: the next window's
        last sample, the loudness detector's next level window or the next status; a source paced in
        real time brings its samples at the sample rate. Waking every POLL_SECONDS instead costs a busy
        machine several per cent of a core per hundred streams of quiet."""
        if self.pipeline.config.source.fast:
            return POLL_SECONDS
        samples = self.scheduler.next_stop - self.ring.end
        if self.loudness is not None:
            samples = min(samples, self._loudness_position + self.loudness.window - self.ring.end)
        wait = min(samples / SAMPLE_RATE, self.reporter.seconds_until_due())
        return min(max(wait, POLL_SECONDS), IDLE_SECONDS)

    def _in_flight(self) -> int:
        counters = self.pipeline.worker.counters(self.name)
        return counters.submitted - counters.processed - counters.failed - counters.skipped

    def _schedule(self) -> None:
        for window in self.scheduler.due(self.ring.end, self.ring.oldest):
            self._submit(window)

    def _schedule_tail(self) -> None:
        """At the end of the stream, one zero-padded window covers the samples after the last window."""
        if self.ring.end > self.ring.consumer_position:
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
        if self.gate is not None and self.gate.quiet(wave):
            self._held.append(window)
            self.ring.consumer_position = window.stop
            self._send_mel(window.stop)
            self._use_held()
            return
        job = Job(self.name, window, wave, ready_wall=self.ring.wall_time(window.stop - 1))
        worker = self.pipeline.worker
        if self.pipeline.config.source.fast:  # a file fed as fast as possible waits for the worker instead of skipping
            while not worker.submit(job, wait=True, timeout=0.1):
                self._take_results()
                if self._stop.is_set():
                    return
        else:
            worker.submit(job)
        self._submitted += 1
        self._in_worker.append(window.index)
        self.ring.consumer_position = window.stop
        self._send_mel(window.stop)

    def _take_results(self) -> None:
        while True:
            try:
                result = self._results.get_nowait()
            except queue.Empty:
                return
            self._handle(result)

    def _handle(self, result: Result) -> None:
        self._returned += 1
        while self._in_worker and self._in_worker.popleft() != result.job.window.index:
            pass  # windows before it that the worker skipped
        if result.error is not None:
            self._error = result.error
        else:
            self._guarded(result.job.window, self._use, result)
        self._use_held()

    def _guarded(self, window: Window, use, argument) -> None:
        """use(argument), where an error costs `window` alone, never the stream."""
        try:
            use(argument)
        except Exception as error:  # one window's result that cannot be used must not end the stream
            log.exception(
                "stream %s: the result of window %d could not be used: %s: %s",
                self.name,
                window.index,
                type(error).__name__,
                error,
            )
            self._error = f"window {window.index}: {type(error).__name__}: {error}"

    def _use(self, result: Result) -> None:
        window = result.job.window
        update = self.stitcher.add(result.framewise, window.start, result.valid_frames, window.next_start)
        self._last_clipwise = result.clipwise
        self._last_window = window
        self._last_gated = False
        self._send_scores(update)
        self.report.hop_latencies.append(time.time() - result.job.ready_wall)
        self._send_events(self.detector.update(update))

    def _use_held(self, all_of_them: bool = False) -> None:
        """Take the gated windows that no window still in the worker precedes; at the stream's end,
        `all_of_them`."""
        if self._held and self._in_worker:
            # results come back in order, so windows passed over were skipped; and once every window handed
            # over is back or skipped (the worker skips only while this thread submits), none is left
            if self._submitted == self._returned + self.pipeline.worker.counters(self.name).skipped:
                self._in_worker.clear()
        while self._held and (all_of_them or not self._in_worker or self._held[0].index < self._in_worker[0]):
            window = self._held.popleft()
            self._guarded(window, self._use_gated, window)

    def _use_gated(self, window: Window) -> None:
        """A gated window: the model's output for it is taken to be 0 everywhere."""
        clipwise, framewise = self.pipeline.silence  # [C], [1024, C] zeros
        update = self.stitcher.add(
            framewise, window.start, self.pipeline.model.frames_for(window.samples), window.next_start
        )
        self._last_clipwise = clipwise
        self._last_window = window
        self._last_gated = True
        self.report.gated_windows += 1
        self._send_scores(update)
        self._send_events(self.detector.update(update))

    def _finish(self) -> None:
        self._use_held(all_of_them=True)
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
        if not self.pipeline.wants("scores"):
            return
        window, config = self._last_window, self.pipeline.config
        self.pipeline.emit(
            Message(
                "scores",
                self.name,
                scores_message(
                    update,
                    self._last_clipwise,
                    self.pipeline.model.labels,
                    config.publish.top_k,
                    self.ring.wall_time(round(update.start * SAMPLES_PER_FRAME)),
                    window.start,
                    window.samples,
                    config.windows.hop,
                    self.ring.wall_time(window.stop - 1),
                    self._last_gated,
                ),
            )
        )

    def _send_events(self, events) -> None:
        for event in events:
            if event.state == "start":
                self.report.events += 1
                self.report.event_latencies.append(event.latency)
            for shown in self.confirmed.take(self.name, event):
                if shown.state == "start":
                    self.report.confirmed_events += 1
                    self.report.confirm_latencies.append(shown.confirm_latency)
            self.pipeline.emit(EventMessage(self.name, event))

    def _send_mel(self, stop: int) -> None:
        """Log-mel columns from the last one sent up to the newest whose STFT frame ends by `stop`."""
        last = (stop - N_FFT // 2) // HOP_LENGTH  # column j is centred on sample j * 320
        oldest = self.ring.oldest  # the context before the first column must still be held
        first = max(self._mel_next, 0 if oldest == 0 else -(-oldest // HOP_LENGTH) + MEL_CONTEXT)
        if last < first:
            return
        if not self.pipeline.wants("mel"):  # nobody watches: the next columns sent start from the newest audio
            self._mel_next = last + 1
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
                mel = self._logmel(wave)  # [T, 64]; column i is centred on sample begin + i * 320
            except ValueError as error:  # audio the front end refuses costs its columns, not the stream
                self._error = f"log-mel of samples {begin}..{chunk_last * HOP_LENGTH}: {error}"
                self._mel_next = last + 1
                return
            columns.append(mel[chunk_first - offset : chunk_last - offset + 1])  # [n, 64]
        columns = np.concatenate(columns)  # [last - first + 1, 64]
        self._mel_next = last + 1
        self.pipeline.emit(
            Message("mel", self.name, mel_message(first, columns, self.ring.wall_time(first * HOP_LENGTH)))
        )

    def _logmel(self, wave: np.ndarray) -> np.ndarray:
        """The front end's log-mel columns of `wave` [n] -> [n // 320 + 1, bins]; digital silence (every sample 0)
        skips the front end: each of its columns is the front end's own column of zeros."""
        if wave.any():
            return self.pipeline.model.logmel(wave)[0]
        if self._silent_mel is None:
            self._silent_mel = self.pipeline.model.logmel(np.zeros(N_FFT, np.float32))[0][0]  # [bins]
        return np.broadcast_to(self._silent_mel, (wave.shape[0] // HOP_LENGTH + 1, self._silent_mel.shape[0]))

    def _send_status(self) -> None:
        self.pipeline.emit(Message("status", self.name, self.reporter.message(self._error)))


def stream_name(spec: str | None) -> str:
    """A stream id derived from a SOURCE: `mic`, `mic:NAME`, the URL of `ffmpeg:URL`, a file's name."""
    if spec is None or spec == "" or spec.startswith("mic"):
        return spec or "mic"
    if spec.startswith("ffmpeg:"):
        return spec[len("ffmpeg:") :]
    return Path(spec).name


class Pipeline:
    """Owns the sources, the stream threads and the inference worker of one or more streams, and hands
    their messages to its outputs.

    `inputs` are SOURCE strings (see stream.capture.open_source) or ready Source objects; default
    the config's `source.inputs`, else its `source.input`. Streams are named by `source.names` when given,
    else by `source.name` or their input (with `#position` when there are several).
    `outputs` (stream.output.Output) take every message of every stream, one message at a time, in their
    order; each stream's `status` shows their counters, and `stop()` closes them in the reverse order.
    `inference` runs the windows instead of `model` (anything with `predict`, `frames_for` and `counters`,
    e.g. stream.inference.cluster.ServeInference); the model still gives the labels, thresholds and `mel`
    columns. The worker runs at most `max_batch` windows at once (default CPU_MAX_BATCH when the model runs
    on a CPU in this process, else MAX_BATCH). `thresholds` carries the on-thresholds
    changed live; an output that changes them (MQTT) is built with its `set` before the pipeline.
    """

    def __init__(
        self,
        config: Config,
        model,
        inputs: list[str | Source] | None = None,
        outputs: list[Output] = (),
        inference=None,
        max_batch: int | None = None,
        thresholds: ThresholdChanges | None = None,
    ):
        self.config = config
        self.model = model
        self.outputs = list(outputs)
        self.inference = inference
        self.thresholds = ThresholdChanges() if thresholds is None else thresholds
        if max_batch is None:
            max_batch = CPU_MAX_BATCH if inference is None and model.backend.device == "cpu" else MAX_BATCH
        self.worker = InferenceWorker(model if inference is None else inference, max_batch=max_batch)
        # what a gated window scores: clipwise [C] and framewise [1024, C] zeros, read only (pages never written)
        self.silence = (
            np.zeros(model.num_classes, np.float32),
            np.zeros((MODEL_FRAMES, model.num_classes), np.float32),
        )
        self.runners: list[StreamRunner] = []
        self._lock = threading.Lock()  # one message at a time into the outputs
        inputs = list(inputs or config.source.inputs or [config.source.input or None])
        names = config.source.names
        if names and len(names) != len(inputs):
            raise ValueError(f"source.names: {len(names)} names for {len(inputs)} inputs")
        for position, given in enumerate(inputs):
            spec = given.description if isinstance(given, Source) else given
            if names:
                name = names[position]
            else:
                name = config.source.name or stream_name(spec)
                if len(inputs) > 1:
                    name = f"{name}#{position}"
            scheduler = WindowScheduler.of_stream(config.windows.hop, position, len(inputs), config.windows.stagger)
            if isinstance(given, Source):
                source = given
            else:  # fed fast, a file stays just ahead of the next window's end
                source = open_source(
                    given, fast=config.source.fast, max_ahead=scheduler.next_stop + FAST_LEAD, loop=config.source.loop
                )
            runner = StreamRunner(self, name, spec or "mic", source, scheduler)
            for output in self.outputs:
                output.attach(name, runner.ring, [target.name for target in runner.detector.targets])
            self.runners.append(runner)

    def wants(self, topic: str) -> bool:
        """Whether an output takes messages of `topic` now: a stream builds none that nobody takes."""
        with self._lock:
            return any(output.wants(topic) for output in self.outputs)

    def emit(self, message) -> None:
        """Hand `message` (a stream.messages.Message or EventMessage) to every output that takes its topic, one
        message at a time."""
        with self._lock:
            for output in self.outputs:
                if not output.wants(message.topic):
                    continue
                try:
                    output.handle(message)
                except Exception as error:  # an output that fails loses its message, never the stream
                    log.exception(
                        "%r failed on a %s message: %s: %s", output, message.topic, type(error).__name__, error
                    )

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
            self.thresholds.set(runner.name, target, on)

    def stop(self, timeout: float = 30.0) -> dict[str, StreamReport]:
        """Stop capturing, finish what was captured, end open events, close the outputs; the reports."""
        for runner in self.runners:  # stop all captures first, so the streams end at about one moment
            runner.source.stop()
        for runner in self.runners:
            runner.stop(timeout)
        self.worker.stop()
        close_outputs(self.outputs)
        return {runner.name: runner.report for runner in self.runners}
