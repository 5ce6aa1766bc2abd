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
            raise ValueError(
                f"FrameHistory needs positive sizes, got length={length} width={width} frame_seconds={frame_seconds}"
            )
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
        self._store(keep, frames[keep - first :], slice(None) if columns is None else columns)
        self.end = max(self.end, last)

    def view(self) -> np.ndarray:
        """The last `length` frames, oldest first: [L, W], a view into the buffer (no copy)."""
        start = self.end % self.length
        return self._buffer[start : start + self.length]

    def start_seconds(self) -> float:
        """Stream time at the left edge of `view()`."""
        return (self.end - self.length) * self.frame_seconds

    def end_seconds(self) -> float:
        return self.end * self.frame_seconds

    def frame_at(self, seconds: float) -> int:
        return int(round(seconds / self.frame_seconds))

    def frames(self, first: int, last: int) -> tuple[int, np.ndarray]:
        """Frames [first, last) as far as they are held (written, and not yet overwritten): the index
        of the first one returned, and [n, W], a view."""
        held = self.end - self.length  # the absolute index of view()[0]
        start = max(first, held, 0)
        return start, self.view()[start - held : max(min(last, self.end), start) - held]

    def pooled(self, first: int, last: int, factor: int) -> tuple[int, np.ndarray]:
        """The maximum of each group of `factor` frames (group g = frames [g, g + 1) * factor) that
        frames [first, last) fall in, from the frames held, for a coarser history of the same signal:
        (the first group's index, [groups, W]). A group whose newest frames are not written yet takes
        the maximum of those that are; one whose oldest frames are no longer held is left out."""
        group_first = -(-max(first // factor * factor, self.end - self.length, 0) // factor)
        stop = min(-(-last // factor) * factor, self.end)
        _, block = self.frames(group_first * factor, stop)  # [n, W]
        if len(block) == 0:
            return group_first, block
        groups = -(-len(block) // factor)
        padded = np.pad(block, ((0, groups * factor - len(block)), (0, 0)), mode="edge")
        return group_first, padded.reshape(groups, factor, self.width).max(axis=1)

    def _clear(self, first: int, last: int) -> None:
        first = max(first, last - self.length)
        for begin, end in self._slots(first, last):
            self._buffer[begin:end] = self.fill
            self._buffer[begin + self.length : end + self.length] = self.fill

    def _store(self, first: int, frames: np.ndarray, columns) -> None:
        done = 0
        for begin, end in self._slots(first, first + len(frames)):
            chunk = frames[done : done + end - begin]
            self._buffer[begin:end, columns] = chunk
            self._buffer[begin + self.length : end + self.length, columns] = chunk
            done += end - begin

    def _slots(self, first: int, last: int):
        """Slot ranges in [0, L) holding frames [first, last) (at most L frames): one or two pieces."""
        begin = first % self.length
        count = last - first
        if begin + count <= self.length:
            return [(begin, begin + count)]
        return [(begin, self.length), (0, begin + count - self.length)]
