"""Replay a recording through the stream's windows and stitcher, without threads or a ring buffer.

What the live pipeline computes for a recording, in order and independent of timing: the windows of
`WindowScheduler` on a hop (its first-10-s policy included) plus one zero-padded window over the tail,
run through the model in batches, each placed by the `Stitcher`. `tag`, `consistency` and the tests use
it as the reference for "what the stream gives".

The audio comes in blocks (a whole wave is one block), and only what the next windows need is kept, so
a recording of any length replays in bounded memory; `FinalFrames` hands out each timeline frame once it
is final, so a consumer can summarise a long recording without holding its timeline.
"""

from collections.abc import Iterable, Iterator

import numpy as np

from htsat_live.model import zero_padded_batch
from htsat_live.stream.stitch import Stitcher, TimelineUpdate
from htsat_live.stream.windows import Window, WindowScheduler


def tail_window(scheduler: WindowScheduler, covered: int, n_samples: int) -> Window | None:
    """The zero-padded window over the samples after the last scheduled window (the live runner's last)."""
    if covered >= n_samples:
        return None
    k = scheduler.next_index
    return Window(index=k, start=scheduler.start_of(k), stop=n_samples, next_start=scheduler.start_of(k + 1))


def replay_blocks(
    model, blocks: Iterable[np.ndarray], hop_seconds: float, batch_size: int = 4
) -> Iterator[TimelineUpdate]:
    """Each window's stitcher update for a recording given as consecutive float32 blocks at 32 kHz, then
    the final one. Holds at most the audio of the next window and of `batch_size` pending windows."""
    scheduler = WindowScheduler(hop_seconds)
    stitcher = Stitcher(model.num_classes)
    held, held_start, received, covered = np.zeros(0, np.float32), 0, 0, 0  # audio held from sample held_start
    pending: list[tuple[Window, np.ndarray]] = []
    for block in blocks:
        held = np.concatenate([held, block])
        received += len(block)
        for window in scheduler.due(received):
            pending.append((window, held[window.start - held_start : window.stop - held_start].copy()))
            covered = window.stop
            if len(pending) == batch_size:
                yield from _run(model, stitcher, pending)
                pending = []
        keep_from = scheduler.start_of(scheduler.next_index)  # no later window starts before it
        held, held_start = held[keep_from - held_start :], keep_from
    tail = tail_window(scheduler, covered, received)
    if tail is not None:
        pending.append((tail, held[tail.start - held_start : tail.stop - held_start]))
    yield from _run(model, stitcher, pending)
    yield stitcher.finish()


def _run(model, stitcher: Stitcher, pending: list[tuple[Window, np.ndarray]]) -> Iterator[TimelineUpdate]:
    if not pending:
        return
    audio = zero_padded_batch([wave for _, wave in pending])  # [b, 320000]
    framewise = model.predict(audio, short="pad")["framewise"]  # [b, 1024, C]
    for row, (window, _) in enumerate(pending):
        yield stitcher.add(framewise[row], window.start, model.frames_for(window.samples), window.next_start)


def replay(model, wave: np.ndarray, hop_seconds: float, batch_size: int = 4) -> Iterator[TimelineUpdate]:
    """Each window's stitcher update for a whole recording float32 [N] at 32 kHz, then the final one."""
    return replay_blocks(model, [wave], hop_seconds, batch_size)


class FinalFrames:
    """Applies stitcher updates and returns each frame of the timeline once, when it became final.

    Only the provisional frames are held (about one window), so memory does not grow with the recording.
    """

    def __init__(self, num_classes: int):
        self.values = np.zeros((0, num_classes), dtype=np.float32)  # [frames, C] from grid frame `base`
        self.base = 0

    def apply(self, update: TimelineUpdate) -> np.ndarray:
        """The frames that this update made final, [n, C], in grid order from the previous ones."""
        if update.end - self.base > len(self.values):
            grown = np.zeros((update.end - self.base, self.values.shape[1]), dtype=np.float32)
            grown[: len(self.values)] = self.values
            self.values = grown
        first = max(update.start, self.base)  # frames before base were final already and never change
        self.values[first - self.base : update.stop - self.base] = update.values[first - update.start :]
        final = self.values[: update.final_upto - self.base].copy()
        self.values = self.values[update.final_upto - self.base :]
        self.base = update.final_upto
        return final


def file_timeline(model, wave: np.ndarray, hop_seconds: float, batch_size: int = 4) -> np.ndarray:
    """The stitched per-class timeline of a whole recording: [N] -> [frames, C] on the 10/1024-s grid."""
    frames = FinalFrames(model.num_classes)
    return np.concatenate([frames.apply(update) for update in replay(model, wave, hop_seconds, batch_size)])
