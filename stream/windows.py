"""Window scheduler: which 10-s windows of the stream to analyse, and when.

Windows are scheduled on a fixed hop: window `k` ends at sample `(k + 1) * hop + offset` (absolute sample
indices from the stream's first sample, as in `stream.ring.RingBuffer`), and is due as soon as that
many samples exist. It starts `window` samples before its end. The offset (0 <= offset < hop, default 0)
lets streams that start together fall due at different moments (`windows.stagger`, `of_stream`).

First 10 s (the first output must not wait for a full window): while fewer than `window` samples
exist, the window starts at sample 0 and holds only the samples captured so far (`Window.samples` <
`window`). The worker zero-pads it at the end (`predict(short="pad")`, as the offline evaluation
does for short clips) and only the first `model.frames_for(window.samples)` frames of its framewise
output hold real audio; the stitcher takes just those. So the first scores come one hop after the
start, and each early window replaces the previous one's frames with an estimate that has seen more
audio. From the window ending at sample `window` on, every window is full.

The scheduler holds no audio; the caller reads `[window.start, window.stop)` from the ring buffer.

Level gate (`windows.gate_dbfs`): `LevelGate.quiet(wave)` tells a window whose every second stays below
the gate level, which the pipeline then does not run through the model. The level of a second is the
one `status` shows as `level_dbfs`: 20 log10 of the RMS of one second of samples, unweighted, in dBFS (a
full-scale sine is -3 dBFS), floored at -120 dBFS. The gate takes every second of the window that starts
on a multiple of `GATE_STEP_SECONDS` from the window's first sample (the whole window when it is shorter
than a second), so a sound shorter than a second counts with the second it falls in, as on `status`.
"""

from dataclasses import dataclass

import numpy as np

from htsat_live.model import SAMPLE_RATE, WINDOW_SAMPLES

GATE_SECOND = 1.0  # seconds per level measurement of the gate (as status level_dbfs)
GATE_STEP_SECONDS = 0.125  # seconds between the starts of the seconds the gate measures


def hop_samples(hop_seconds: float, sample_rate: int = SAMPLE_RATE) -> int:
    """The samples between two window ends for a hop of `hop_seconds`."""
    return round(hop_seconds * sample_rate)


@dataclass(frozen=True)
class Window:
    index: int  # k: the k-th window of the schedule (skipped windows keep their numbers)
    start: int  # absolute index of the first sample
    stop: int  # one past the last sample
    next_start: int  # start of window k + 1: no later window starts before it

    @property
    def samples(self) -> int:
        """Samples of real audio in the window (< the window length only during the first 10 s)."""
        return self.stop - self.start


class WindowScheduler:
    """Hands out the windows that became due as samples arrive; one per hop.

    `due(available, oldest)` returns every window whose last sample exists, in order, each once.
    A window whose first sample was already overwritten in the ring (`start < oldest`) is skipped
    and counted in `skipped`.
    """

    def __init__(
        self, hop_seconds: float, sample_rate: int = SAMPLE_RATE, window_samples: int = WINDOW_SAMPLES, offset: int = 0
    ):
        hop = hop_samples(hop_seconds, sample_rate)
        if not 0 < hop <= window_samples:
            raise ValueError(f"hop must be in (0, {window_samples / sample_rate}] s, got {hop_seconds}")
        if not 0 <= offset < hop:
            raise ValueError(f"window offset must be in [0, {hop}) samples, got {offset}")
        self.hop = hop  # samples between window ends
        self.offset = offset  # samples every window end is moved later by
        self.window = window_samples
        self.sample_rate = sample_rate
        self.reset()

    @classmethod
    def of_stream(cls, hop_seconds: float, position: int, streams: int, stagger: bool) -> "WindowScheduler":
        """The schedule of stream `position` of `streams` that start together: a stream alone's, or with
        `stagger` moved position/streams of a hop later, so that their windows fall due spread over the hop."""
        return cls(hop_seconds, offset=position * hop_samples(hop_seconds) // streams if stagger else 0)

    def reset(self) -> None:
        """Start over at sample 0 of a new stream."""
        self.next_index = 0  # the next window to hand out
        self.skipped = 0

    def stop_of(self, index: int) -> int:
        """One past the last sample of window `index`."""
        return (index + 1) * self.hop + self.offset

    def start_of(self, index: int) -> int:
        """First sample of window `index`."""
        return max(0, self.stop_of(index) - self.window)

    @property
    def next_stop(self) -> int:
        """Samples needed before the next window is due."""
        return self.stop_of(self.next_index)

    def due(self, available: int, oldest: int = 0) -> list[Window]:
        """Windows that end at or before `available` samples and were not handed out yet.

        `oldest` is the oldest sample still readable (`RingBuffer.oldest`); windows that start
        before it are skipped and counted.
        """
        windows = []
        while self.next_stop <= available:
            k = self.next_index
            self.next_index += 1
            start = self.start_of(k)
            if start < oldest:
                self.skipped += 1
                continue
            windows.append(Window(index=k, start=start, stop=self.stop_of(k), next_start=self.start_of(k + 1)))
        return windows


class LevelGate:
    """`quiet(wave)`: whether every second of a window's samples [n] stays below `gate_dbfs` (see the module)."""

    def __init__(self, gate_dbfs: float, sample_rate: int = SAMPLE_RATE):
        if not -120.0 < gate_dbfs <= 0.0:
            raise ValueError(f"the gate level must be in (-120, 0] dBFS, got {gate_dbfs}")
        self.power = 10.0 ** (gate_dbfs / 10.0)  # mean power of a second at the gate level
        self.block = round(GATE_STEP_SECONDS * sample_rate)  # samples per step
        self.blocks = round(GATE_SECOND / GATE_STEP_SECONDS)  # steps per measured second

    def quiet(self, wave: np.ndarray) -> bool:
        """True when no second of `wave` [n] reaches the gate level; an empty wave is quiet."""
        full = wave.shape[0] // self.block
        blocks = wave[: full * self.block].reshape(full, self.block)  # [full, block]
        energy = (blocks[:, None, :] @ blocks[:, :, None]).reshape(full).astype(np.float64)  # [full]: BLAS dots
        if full * self.block < wave.shape[0]:  # the tail that fills no step ends the last second
            tail = wave[full * self.block :]
            energy = np.append(energy, float(np.dot(tail, tail)))
        if energy.size == 0:
            return True
        samples = np.full(energy.size, float(self.block))
        samples[-1] = wave.shape[0] - (energy.size - 1) * self.block  # [steps]
        span = min(self.blocks, energy.size)
        kernel = np.ones(span)
        powers = np.convolve(energy, kernel, "valid") / np.convolve(samples, kernel, "valid")  # [seconds]
        return bool(powers.max() < self.power)
