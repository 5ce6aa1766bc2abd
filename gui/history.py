"""A scrolling history of regularly spaced frames, kept in preallocated numpy memory.

`FrameHistory` stores the last `length` frames of a signal sampled every `frame_seconds`
(log-mel rows, per-class scores). Frame k covers [k, k+1) * frame_seconds of stream time.
Every frame is written twice, at slot k % length and k % length + length, so the last
`length` frames are always one contiguous slice of the buffer: `view()` returns that slice
without copying, and an image item can draw it in place.
"""

import numpy as np


class FrameHistory:
    def __init__(self, length: int, width: int, frame_seconds: float, fill: float = 0.0):
        if length <= 0 or width <= 0 or frame_seconds <= 0:
            raise ValueError(f"FrameHistory needs positive sizes, got length={length} width={width} "
                             f"frame_seconds={frame_seconds}")
        self.length = length
        self.width = width
        self.frame_seconds = frame_seconds
        self.fill = fill
        self._buffer = np.empty((2 * length, width), dtype=np.float32)  # [2L, W]
        self.reset()

    def reset(self) -> None:
        self._buffer.fill(self.fill)
        self.end = 0  # one past the newest frame written (an absolute frame index)

    def write(self, first: int, frames: np.ndarray, columns: np.ndarray | None = None) -> None:
        """Store frames [first, first + n) (`frames` is [n, W], or [n, len(columns)] for just those
        columns); rewrites frames already held. Frames older than the history are ignored; frames
        newer than any held start out as `fill` in the columns not written.
        """
        frames = np.asarray(frames, dtype=np.float32)
        width = self.width if columns is None else len(columns)
        if frames.ndim != 2 or frames.shape[1] != width:
            raise ValueError(f"expected frames of shape [n, {width}], got {frames.shape}")
        last = first + len(frames)
        if len(frames) == 0 or last <= self.end - self.length:
            return
        if last > self.end:
            self._clear(self.end, last)
        keep = max(first, max(self.end, last) - self.length)
        self._store(keep, frames[keep - first:], slice(None) if columns is None else columns)
        self.end = max(self.end, last)

    def view(self) -> np.ndarray:
        """The last `length` frames, oldest first: [L, W], a view into the buffer (no copy)."""
        start = self.end % self.length
        return self._buffer[start:start + self.length]

    def start_seconds(self) -> float:
        """Stream time at the left edge of `view()`."""
        return (self.end - self.length) * self.frame_seconds

    def end_seconds(self) -> float:
        return self.end * self.frame_seconds

    def frame_at(self, seconds: float) -> int:
        return int(round(seconds / self.frame_seconds))

    def _clear(self, first: int, last: int) -> None:
        first = max(first, last - self.length)
        for begin, end in self._slots(first, last):
            self._buffer[begin:end] = self.fill
            self._buffer[begin + self.length:end + self.length] = self.fill

    def _store(self, first: int, frames: np.ndarray, columns) -> None:
        done = 0
        for begin, end in self._slots(first, first + len(frames)):
            chunk = frames[done:done + end - begin]
            self._buffer[begin:end, columns] = chunk
            self._buffer[begin + self.length:end + self.length, columns] = chunk
            done += end - begin

    def _slots(self, first: int, last: int):
        """Slot ranges in [0, L) holding frames [first, last) (at most L frames): one or two pieces."""
        begin = first % self.length
        count = last - first
        if begin + count <= self.length:
            return [(begin, begin + count)]
        return [(begin, self.length), (0, begin + count - self.length)]
