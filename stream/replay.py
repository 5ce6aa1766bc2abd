"""Replay a whole recording through the stream's windows and stitcher, without threads or a ring buffer.

What the live pipeline computes for a recording, in order and independent of timing: the windows of
`WindowScheduler` on a hop (its first-10-s policy included) plus one zero-padded window over the tail,
run through the model in batches, each placed by the `Stitcher`. `tag`, `consistency` and the tests use
it as the reference for "what the stream gives".
"""

from collections.abc import Iterator

import numpy as np

from htsat_live.model import zero_padded_batch
from htsat_live.stream.stitch import Stitcher, TimelineUpdate
from htsat_live.stream.windows import Window, WindowScheduler


def file_windows(n_samples: int, hop_seconds: float) -> list[Window]:
    """The stream's windows over a whole recording, plus one zero-padded window covering its tail."""
    scheduler = WindowScheduler(hop_seconds)
    windows = scheduler.due(n_samples)
    covered = windows[-1].stop if windows else 0
    if covered < n_samples:
        k = scheduler.next_index
        windows.append(Window(index=k, start=scheduler.start_of(k), stop=n_samples, next_start=scheduler.start_of(k + 1)))
    return windows


def replay(model, wave: np.ndarray, hop_seconds: float, batch_size: int = 4) -> Iterator[TimelineUpdate]:
    """Each window's stitcher update for a recording float32 [N] at 32 kHz, then the final one."""
    stitcher = Stitcher(model.num_classes)
    windows = file_windows(len(wave), hop_seconds)
    for first in range(0, len(windows), batch_size):
        batch = windows[first : first + batch_size]
        audio = zero_padded_batch([wave[window.start:window.stop] for window in batch])  # [b, 320000]
        framewise = model.predict(audio, short="pad")["framewise"]  # [b, 1024, C]
        for row, window in enumerate(batch):
            yield stitcher.add(framewise[row], window.start, model.frames_for(window.samples), window.next_start)
    yield stitcher.finish()


class TimelineRecorder:
    """Applies stitcher updates to a growing copy of the whole timeline [frames, C]."""

    def __init__(self, num_classes: int):
        self.values = np.zeros((0, num_classes), dtype=np.float32)

    def apply(self, update: TimelineUpdate) -> None:
        if update.end > len(self.values):
            grown = np.zeros((update.end, self.values.shape[1]), dtype=np.float32)
            grown[: len(self.values)] = self.values
            self.values = grown
        self.values[update.start : update.stop] = update.values


def file_timeline(model, wave: np.ndarray, hop_seconds: float, batch_size: int = 4) -> np.ndarray:
    """The stitched per-class timeline of a whole recording: [N] -> [frames, C] on the 10/1024-s grid."""
    recorder = TimelineRecorder(model.num_classes)
    for update in replay(model, wave, hop_seconds, batch_size):
        recorder.apply(update)
    return recorder.values
