"""The inference worker: one thread that runs the model on the windows of every stream, batched.

Streams `submit` jobs (a window's audio); each stream has a small bounded queue. When a stream's queue
is full, its oldest waiting window is skipped (counted) so the worker always moves on to the newest
audio instead of falling further behind. A stream fed faster than real time can instead wait for room
(`submit(job, wait=True)`), so that nothing is skipped.

The worker takes every waiting window (oldest first per stream, up to `max_batch`) into one
`model.predict(batch, short="pad")` call and hands each result to its stream's `deliver` callback.
When a batch raises, its windows are run one by one so that only the failing window is lost; that
window's result carries the error and the stream's `failed` counter grows. The thread never dies of a
window.

Failed windows are said on stderr without flooding it while inference stays down (a cluster away fails every
window): the first failure of a run is logged whole, a failure of another kind at once, then one line every
FAILURE_SUMMARY_SECONDS ("inference failing: N windows failed so far (last: ...)"), and the first window run
after several failed ones says "inference back after N failed windows".
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import numpy as np

from htsat_live.model import WINDOW_SAMPLES, zero_padded_batch
from htsat_live.stream.windows import Window

log = logging.getLogger(__name__)

FAILURE_SUMMARY_SECONDS = 30.0  # while windows keep failing, one warning line per this many seconds


@dataclass
class Job:
    stream: Hashable  # key the stream was added with
    window: Window
    wave: np.ndarray  # [window.samples] float32 at 32 kHz
    ready_wall: float  # capture wall time of the window's last sample


@dataclass
class Result:
    job: Job
    clipwise: np.ndarray | None  # [C], None when the window failed
    framewise: np.ndarray | None  # [1024, C]
    valid_frames: int  # leading framewise frames that hold real audio
    error: str | None = None
    inference_seconds: float = 0.0  # wall time of the predict call this window was part of
    batch_size: int = 0


@dataclass
class StreamCounters:
    submitted: int = 0
    processed: int = 0
    skipped: int = 0  # dropped from a full queue: the worker was behind
    failed: int = 0  # inference raised for this window
    last_error: str | None = None


@dataclass
class _Stream:
    deliver: Callable[[Result], None]
    queue: deque = field(default_factory=deque)
    counters: StreamCounters = field(default_factory=StreamCounters)


class FailureLog:
    """The warnings about failed windows, rate-limited (see the module docstring); used by the worker's thread only.
    A run is the failed windows since the last window that ran."""

    def __init__(self, summary_seconds: float = FAILURE_SUMMARY_SECONDS):
        self.summary_seconds = summary_seconds
        self.reset()

    def reset(self) -> None:
        self.in_run = 0  # windows failed since the last one that ran
        self.unsaid = 0  # of those, failed since the last line
        self.kind: str | None = None  # the exception type of the run's newest failure
        self.last = ""  # the run's newest failure, as said
        self.last_line = 0.0  # time.monotonic() of the last line

    def failed(self, message: str, kind: str) -> None:
        """A window failed: `message` names it and why, `kind` is the exception's type name."""
        self.in_run += 1
        first_of_kind = self.in_run == 1 or kind != self.kind
        self.kind, self.last = kind, message
        if first_of_kind:
            log.warning(message if self.in_run == 1 else f"{message} ({self.in_run} windows failed in a row)")
            self.unsaid, self.last_line = 0, time.monotonic()
            return
        self.unsaid += 1
        if time.monotonic() - self.last_line >= self.summary_seconds:
            self.summarise()

    def summarise(self) -> None:
        """One line: how many windows failed in the run so far, and the newest failure."""
        log.warning("inference failing: %d windows failed so far (last: %s)", self.in_run, self.last)
        self.unsaid, self.last_line = 0, time.monotonic()

    def ran(self) -> None:
        """A window ran: a run of several failed ones is over."""
        if self.in_run > 1:
            log.warning("inference back after %d failed windows", self.in_run)
        self.reset()


class InferenceWorker:
    """Owns the inference thread. `model` is a model.Predictor (anything with predict/frames_for)."""

    def __init__(
        self, model, max_batch: int = 8, max_pending: int = 2, failure_summary_seconds: float = FAILURE_SUMMARY_SECONDS
    ):
        if max_batch < 1 or max_pending < 1:
            raise ValueError("max_batch and max_pending must be at least 1")
        self.model = model
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.failures = FailureLog(failure_summary_seconds)
        self._streams: dict[Hashable, _Stream] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._in_progress = False  # a batch is being run
        self.reset()

    def reset(self) -> None:
        """Drop every waiting window and zero the counters (streams stay registered)."""
        with self._lock:
            for stream in self._streams.values():
                stream.queue.clear()
                stream.counters = StreamCounters()
            self.batches = 0
            self.windows = 0
            self.busy_seconds = 0.0
            self.failures.reset()

    # --- streams -------------------------------------------------------------------------------

    def add_stream(self, key: Hashable, deliver: Callable[[Result], None]) -> None:
        with self._lock:
            if key in self._streams:
                raise ValueError(f"stream {key!r} is already registered")
            self._streams[key] = _Stream(deliver)

    def remove_stream(self, key: Hashable) -> None:
        with self._lock:
            self._streams.pop(key, None)
            self._changed.notify_all()

    def counters(self, key: Hashable) -> StreamCounters:
        with self._lock:
            counters = self._streams[key].counters
            return StreamCounters(**vars(counters))

    def pending(self, key: Hashable | None = None) -> int:
        """Windows waiting for inference: of one stream, or of all."""
        with self._lock:
            if key is not None:
                return len(self._streams[key].queue)
            return sum(len(stream.queue) for stream in self._streams.values())

    def submit(self, job: Job, wait: bool = False, timeout: float | None = None) -> bool:
        """Queue a window. With a full queue: skip the oldest waiting one (default), or with `wait`
        block until there is room (False after `timeout`, the job not queued)."""
        if job.wave.ndim != 1 or job.wave.shape[0] > WINDOW_SAMPLES:
            raise ValueError(f"a job holds one window of at most {WINDOW_SAMPLES} samples, got {job.wave.shape}")
        with self._lock:
            stream = self._streams[job.stream]
            if wait:
                if not self._changed.wait_for(lambda: len(stream.queue) < self.max_pending or self._stopping, timeout):
                    return False
            while len(stream.queue) >= self.max_pending:
                stream.queue.popleft()
                stream.counters.skipped += 1
            stream.queue.append(job)
            stream.counters.submitted += 1
            self._changed.notify_all()
            return True

    # --- thread --------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the worker is already running")
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="inference worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish the batch in progress, then stop; windows still waiting are dropped."""
        with self._lock:
            self._stopping = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.failures.unsaid:  # failures since the last line: said once more, with the total
            self.failures.summarise()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until no window is waiting or in progress; False on timeout."""
        with self._lock:
            return self._changed.wait_for(lambda: self._idle(), timeout)

    def _idle(self) -> bool:
        return not self._in_progress and not any(stream.queue for stream in self._streams.values())

    def _run(self) -> None:
        while True:
            with self._lock:
                self._changed.wait_for(lambda: self._stopping or any(s.queue for s in self._streams.values()))
                if self._stopping:
                    return
                batch = self._take_batch()
                self._in_progress = True
            results = self._infer(batch)
            with self._lock:
                for result in results:
                    stream = self._streams.get(result.job.stream)
                    if stream is None:
                        continue
                    if result.error is None:
                        self.failures.ran()
                        stream.counters.processed += 1
                    else:
                        stream.counters.failed += 1
                        stream.counters.last_error = result.error
                deliveries = [(self._streams.get(r.job.stream), r) for r in results]
            for stream, result in deliveries:
                if stream is not None:
                    self._deliver(stream, result)
            with self._lock:
                self._in_progress = False
                self._changed.notify_all()

    def _take_batch(self) -> list[Job]:
        """Oldest waiting window of each stream in turn, until max_batch or none is left."""
        batch = []
        while len(batch) < self.max_batch:
            took = False
            for stream in self._streams.values():
                if stream.queue and len(batch) < self.max_batch:
                    batch.append(stream.queue.popleft())
                    took = True
            if not took:
                break
        self._changed.notify_all()  # room in the queues for waiting submitters
        return batch

    def _infer(self, batch: list[Job]) -> list[Result]:
        try:
            return self._predict(batch)
        except Exception as error:
            if len(batch) == 1:
                job = batch[0]
                message = f"window {job.window.index} of {job.stream!r} failed: {type(error).__name__}: {error}"
                self.failures.failed(message, type(error).__name__)
                return [Result(job, None, None, 0, error=message)]
        return [result for job in batch for result in self._infer([job])]  # isolate the failing window

    def _predict(self, batch: list[Job]) -> list[Result]:
        waves = zero_padded_batch([job.wave for job in batch])  # [B, 320000]
        started = time.perf_counter()
        out = self.model.predict(waves, short="pad")
        elapsed = time.perf_counter() - started
        self.batches += 1
        self.windows += len(batch)
        self.busy_seconds += elapsed
        return [
            Result(
                job,
                out["clipwise"][row],
                out["framewise"][row],
                self.model.frames_for(job.wave.shape[0]),
                inference_seconds=elapsed,
                batch_size=len(batch),
            )
            for row, job in enumerate(batch)
        ]

    def _deliver(self, stream: _Stream, result: Result) -> None:
        try:
            stream.deliver(result)
        except Exception as error:
            log.exception(
                "delivering the result of window %d of %r failed: %s: %s",
                result.job.window.index,
                result.job.stream,
                type(error).__name__,
                error,
            )
