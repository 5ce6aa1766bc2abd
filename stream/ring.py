"""Fixed-capacity ring buffer of mono float32 audio addressed by absolute sample index.

One writer (the capture thread or audio callback) appends blocks; any number of readers copy
ranges out. Sample `i` is the i-th sample written since the last `reset()`; the buffer keeps the
newest `capacity` of them, so valid indices are `[oldest, end)` with `oldest = max(0, end - capacity)`.

The writer never waits for readers: it overwrites the oldest samples. A reader that asks for
samples that were already overwritten gets `Overrun` (random access, `RingBuffer.read`) or, with a
`RingReader` cursor, an overrun counted and its cursor moved to the oldest valid sample.

Reads are copied outside the lock and checked afterwards against the writer's progress, so a copy
that raced with a write over the same samples is detected instead of returned torn.

A source fed faster than real time (stream.capture.Source, a file with `realtime=False`) waits for the
reader on its own instead: the reader sets `consumer_position`, the sample index it has reached, and the
source writes no further than its `max_ahead` past it.

Every write records when its last sample was captured (wall clock, `time.time()` seconds), so
`wall_time(i)` tells when sample `i` was captured: the capture time of the write that held it,
minus the time of the samples that followed it in that write.
"""

import threading
import time
from dataclasses import dataclass

import numpy as np


class Overrun(Exception):
    """The requested samples were overwritten before they could be read."""

    def __init__(self, start: int, oldest: int):
        super().__init__(f"samples from {start} were overwritten; the oldest valid sample is {oldest}")
        self.start = start
        self.oldest = oldest


@dataclass(frozen=True)
class Block:
    start: int  # absolute index of samples[0]
    samples: np.ndarray  # [n] float32


class RingBuffer:
    """Mono float32 samples with absolute indices; thread-safe for one writer and many readers."""

    def __init__(self, capacity: int, sample_rate: int, max_writes_tracked: int = 8192):
        if capacity <= 0:
            raise ValueError(f"ring capacity must be positive, got {capacity}")
        if sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {sample_rate}")
        self.capacity = int(capacity)
        self.sample_rate = int(sample_rate)
        self._data = np.zeros(self.capacity, dtype=np.float32)  # [capacity]
        # Capture-time anchors, one per write, in a ring of their own: the write's end index and the
        # wall time its last sample was captured.
        self._anchor_end = np.zeros(max_writes_tracked, dtype=np.int64)
        self._anchor_time = np.zeros(max_writes_tracked, dtype=np.float64)
        self._lock = threading.Lock()
        self._grown = threading.Condition(self._lock)
        self.consumer_position: int | None = None  # set by a reader that paces a fast writer; None: no pacing
        self.reset()

    def reset(self) -> None:
        """Forget every sample and anchor; the next write is sample 0 again."""
        with self._lock:
            self._end = 0  # one past the newest complete sample
            self._writing_to = 0  # one past the newest sample being written (>= _end)
            self._anchors = 0  # writes recorded so far
            self._closed = False
            self._data.fill(0.0)
            self._grown.notify_all()

    @property
    def end(self) -> int:
        """Absolute index one past the newest sample (= samples written so far)."""
        return self._end

    @property
    def oldest(self) -> int:
        """Absolute index of the oldest sample still held."""
        return max(0, self._end - self.capacity)

    @property
    def closed(self) -> bool:
        """True once the writer said no more samples will come (end of a file, stop)."""
        return self._closed

    def write(self, samples: np.ndarray, capture_time: float | None = None) -> None:
        """Append samples [n]; `capture_time` = wall time the last one was captured (default now)."""
        block = np.asarray(samples, dtype=np.float32).reshape(-1)
        n = block.shape[0]
        if n == 0:
            return
        if capture_time is None:
            capture_time = time.time()
        start = self._end
        if n > self.capacity:  # only the newest `capacity` samples can be kept
            block = block[n - self.capacity :]
        first = start + n - block.shape[0]
        self._writing_to = start + n  # readers treat everything this write touches as dirty
        offset = first % self.capacity
        head = min(block.shape[0], self.capacity - offset)
        self._data[offset : offset + head] = block[:head]
        self._data[: block.shape[0] - head] = block[head:]
        with self._lock:
            slot = self._anchors % self._anchor_end.shape[0]
            self._anchor_end[slot] = start + n
            self._anchor_time[slot] = capture_time
            self._anchors += 1
            self._end = start + n
            self._grown.notify_all()

    def close(self) -> None:
        """Mark the stream finished: waiting readers wake up and see `closed`."""
        with self._lock:
            self._closed = True
            self._grown.notify_all()

    def wait_for(self, index: int, timeout: float | None = None) -> bool:
        """Block until sample `index - 1` exists (end >= index), the ring is closed, or timeout.

        Returns True when `end >= index`.
        """
        with self._lock:
            self._grown.wait_for(lambda: self._end >= index or self._closed, timeout)
            return self._end >= index

    def read(self, start: int, stop: int) -> np.ndarray:
        """Copy of samples [start, stop) -> [stop - start] float32.

        Raises Overrun when some of them were overwritten, ValueError when some do not exist yet.
        """
        if stop < start:
            raise ValueError(f"read range [{start}, {stop}) is reversed")
        end = self._end
        if stop > end:
            raise ValueError(f"samples up to {stop} requested but only {end} were written")
        if start < end - self.capacity:
            raise Overrun(start, end - self.capacity)
        out = self._copy(start, stop)
        dirty_from = self._writing_to - self.capacity  # samples below this may have been overwritten
        if start < dirty_from:
            raise Overrun(start, dirty_from)
        return out

    def _copy(self, start: int, stop: int) -> np.ndarray:
        n = stop - start
        offset = start % self.capacity
        head = min(n, self.capacity - offset)
        out = np.empty(n, dtype=np.float32)
        out[:head] = self._data[offset : offset + head]
        out[head:] = self._data[: n - head]
        return out

    def wall_time(self, index: int) -> float:
        """Wall-clock time (time.time() seconds) at which sample `index` was captured.

        Exact for samples whose write is still tracked; older ones are extrapolated from the oldest
        tracked write at the nominal sample rate. Indices not written yet are extrapolated forward.
        """
        with self._lock:
            if self._anchors == 0:
                raise ValueError("no samples written yet")
            slot = self._anchor_after(index)
            end, time_ = int(self._anchor_end[slot]), float(self._anchor_time[slot])
        return time_ - (end - 1 - index) / self.sample_rate

    def _anchor_after(self, index: int) -> int:
        """The slot of the oldest tracked write that ends after sample `index`, else the newest write's slot.
        The tracked writes, oldest first, lie in two sorted runs of the anchor ring: from the oldest slot to the
        ring's end, then from its start (once it has wrapped); each is searched in place, copying nothing."""
        size = self._anchor_end.shape[0]
        count = min(self._anchors, size)
        oldest = (self._anchors - count) % size
        before_wrap = self._anchor_end[oldest : oldest + count]  # [<= count], increasing
        k = int(np.searchsorted(before_wrap, index, side="right"))
        if k < before_wrap.size:
            return oldest + k
        after_wrap = self._anchor_end[: count - before_wrap.size]  # the newer writes, empty until the ring wraps
        if after_wrap.size == 0:
            return oldest + before_wrap.size - 1
        return min(int(np.searchsorted(after_wrap, index, side="right")), after_wrap.size - 1)

    def reader(self, start: int | None = None) -> "RingReader":
        """A cursor that reads forward from `start` (default: the current end)."""
        return RingReader(self, self._end if start is None else start)


class RingReader:
    """A forward cursor over a RingBuffer that survives falling behind.

    `read()` returns the samples from the cursor to the newest; when the cursor points at samples
    already overwritten, it counts an overrun, adds the lost samples to `lost_samples`, and
    continues from the oldest valid sample.
    """

    def __init__(self, ring: RingBuffer, start: int):
        self.ring = ring
        self.position = start
        self.overruns = 0
        self.lost_samples = 0

    def reset(self, start: int = 0) -> None:
        self.position = start
        self.overruns = 0
        self.lost_samples = 0

    def read(self, max_samples: int | None = None) -> Block:
        """Samples from the cursor up to the newest (at most `max_samples`); may be empty."""
        while True:
            stop = self.ring.end
            if max_samples is not None:
                stop = min(stop, self.position + max_samples)
            if stop <= self.position:
                return Block(self.position, np.zeros(0, dtype=np.float32))
            try:
                samples = self.ring.read(self.position, stop)
            except Overrun as overrun:
                self._skip_to(overrun.oldest)
                continue
            block = Block(self.position, samples)
            self.position = stop
            return block

    def _skip_to(self, oldest: int) -> None:
        self.overruns += 1
        self.lost_samples += oldest - self.position
        self.position = oldest
