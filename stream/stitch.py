"""Stitcher: overlapping per-window framewise maps -> one continuous per-class score timeline.

Grid. Frame `k` of the timeline covers `[k, k + 1) * 10/1024` s from the stream's first sample
(312.5 samples at 32 kHz). A window whose first sample is `s` is placed at grid frame
`floor(s / 312.5 + 0.5)` (the nearest grid frame; exact when `s` is a multiple of 312.5, which holds
for every hop that is a multiple of 1/102.4 s, e.g. all token-aligned hops 0.3125, 0.625, 1.25 s);
its frame `j` lands on grid frame `g + j`.

Overlap rule: nearest centre. Each grid frame takes its value, unchanged, from the window in which it
sits most centrally: the covering window whose centre (grid frame `g + 512`) is nearest to the middle
of the frame (`k + 0.5`); ties go to the newer window. Only a window's frames that hold real audio
(`valid_frames`) cover anything. Values are never averaged, so each frame shows a window's own
output where that window saw the most context on both sides, and with hop = 10 s the timeline is the
windows' outputs laid end to end.

Final vs provisional. Windows arrive in schedule order, and each says where the next window can
start at the earliest (`next_start`, `stream.windows.Window.next_start`). A frame is final when no
window starting there or later can be nearer to it than its present owner; `final_upto` is the grid
index before which all frames are final. It only grows. Frames from `final_upto` to `end` are
provisional: a later window may replace them, and the update that does so reports them as changed.

Memory is bounded: only the frames from `history_frames` before `final_upto` onwards are kept. They sit
in a buffer with `MODEL_FRAMES` spare rows, and are moved to its front only when
the newest window would not fit, not at every window.
"""

from dataclasses import dataclass

import numpy as np

from htsat_live.model import MODEL_FRAMES, SAMPLES_PER_FRAME


@dataclass(frozen=True)
class TimelineUpdate:
    """What one window (or the end of the stream) changed in the timeline."""

    start: int  # grid index of values[0]
    values: np.ndarray  # [n, C] float32: the stitched scores of grid frames start .. start + n - 1
    end: int  # one past the newest grid frame that holds audio
    final_upto: int  # grid frames < final_upto are final

    @property
    def stop(self) -> int:
        """One past the last changed grid frame."""
        return self.start + self.values.shape[0]


def grid_frame(sample: int) -> int:
    """The grid frame nearest to the start of `sample` (a window's placement)."""
    return int(np.floor(sample / SAMPLES_PER_FRAME + 0.5))


class Stitcher:
    """Keeps one stream's stitched timeline [frames, C]; feed it windows with `add`.

    add(framewise [1024, C], start_sample, valid_frames, next_start_sample) -> TimelineUpdate
    finish() -> TimelineUpdate: the stream ended, every frame becomes final.
    frames(start, stop) -> [stop - start, C]: read back retained frames.
    """

    def __init__(self, num_classes: int, history_frames: int = MODEL_FRAMES):
        self.num_classes = num_classes
        self.history_frames = history_frames
        self._capacity = history_frames + 2 * MODEL_FRAMES  # frames kept at most
        rows = self._capacity + MODEL_FRAMES  # the spare rows let the kept frames move rarely
        self._values = np.zeros((rows, num_classes), dtype=np.float32)  # [rows, C]
        self._distance = np.full(rows, np.inf)  # [rows]: owner's centre to frame middle
        self.reset()

    def reset(self) -> None:
        """Forget the timeline; the next window belongs to a new stream."""
        self.base = 0  # grid index of the oldest retained frame
        self._origin = 0  # grid index of buffer row 0 (<= base; rows from end - _origin on are unfilled)
        self.end = 0  # one past the newest frame holding audio
        self.final_upto = 0
        self.gap_frames = 0  # frames no window covered (windows skipped for > 10 s); set to 0
        self._earliest_next = 0  # the earliest start sample the next window may have
        self._values.fill(0.0)
        self._distance.fill(np.inf)

    def add(
        self, framewise: np.ndarray, start_sample: int, valid_frames: int, next_start_sample: int
    ) -> TimelineUpdate:
        """Place one window's framewise map [1024, C].

        `valid_frames`: how many leading frames hold real audio (model.frames_for(samples));
        `next_start_sample`: the earliest first sample of any later window (Window.next_start).
        Raises ValueError for a wrong shape or a window that starts before the promised next start.
        """
        framewise = np.asarray(framewise, dtype=np.float32)
        if framewise.shape != (MODEL_FRAMES, self.num_classes):
            raise ValueError(f"framewise must be [{MODEL_FRAMES}, {self.num_classes}], got {list(framewise.shape)}")
        if not 0 < valid_frames <= MODEL_FRAMES:
            raise ValueError(f"valid_frames must be in 1..{MODEL_FRAMES}, got {valid_frames}")
        if start_sample < self._earliest_next or next_start_sample < start_sample:
            raise ValueError(
                f"window at sample {start_sample} breaks the schedule (next start >= "
                f"{self._earliest_next}, its own next start {next_start_sample})"
            )
        self._earliest_next = next_start_sample
        first = grid_frame(start_sample)
        stop = first + valid_frames
        self._make_room(first, stop)

        changed_from, changed_to = stop, first
        if first > self.end:  # no window covered [end, first): score 0 there
            self.gap_frames += first - self.end
            changed_from = self.end
        rows = slice(first - self._origin, stop - self._origin)
        middles = np.arange(first, stop) + 0.5
        distance = np.abs(middles - (first + MODEL_FRAMES / 2))  # [valid_frames]
        takes = distance <= self._distance[rows]  # [valid_frames]: this window is at least as central
        if takes.any():
            taken = np.flatnonzero(takes)
            low, high = int(taken[0]), int(taken[-1]) + 1
            if high - low == taken.size:  # one run of frames, as on any regular schedule: copied as a block
                taken = slice(low, high)
            self._values[rows][taken] = framewise[taken]
            self._distance[rows][taken] = distance[taken]
            changed_from = min(changed_from, first + low)
            changed_to = first + high
        self.end = max(self.end, stop)
        changed_to = max(changed_to, changed_from)
        self._advance_final(next_start_sample)
        return TimelineUpdate(changed_from, self.frames(changed_from, changed_to), self.end, self.final_upto)

    def finish(self) -> TimelineUpdate:
        """The stream ended: every frame that holds audio is final."""
        self.final_upto = self.end
        return TimelineUpdate(self.end, np.zeros((0, self.num_classes), np.float32), self.end, self.final_upto)

    def frames(self, start: int, stop: int) -> np.ndarray:
        """Copy of grid frames [start, stop) -> [stop - start, C]; they must be retained and filled."""
        if start < self.base or stop > self.end or stop < start:
            raise ValueError(f"frames [{start}, {stop}) not held (held: [{self.base}, {self.end}))")
        return self._values[start - self._origin : stop - self._origin].copy()

    def _advance_final(self, next_start_sample: int) -> None:
        # A later window starts at grid frame >= g_next, so its centre is >= c_next: it cannot reach
        # frames before g_next, and it takes frame k only if |k + 0.5 - c| <= the present distance.
        g_next = grid_frame(next_start_sample)
        c_next = g_next + MODEL_FRAMES / 2
        final = min(max(self.final_upto, g_next), self.end)
        candidates = np.arange(final, self.end)
        safe = self._distance[final - self._origin : self.end - self._origin] < c_next - (candidates + 0.5)
        unsafe = np.flatnonzero(~safe)
        self.final_upto = self.end if unsafe.size == 0 else final + int(unsafe[0])

    def _make_room(self, first: int, stop: int) -> None:
        # Drop frames older than the history, and move the kept ones to the buffer's front when rows up to
        # `stop` would not fit; rows past the kept frames read as unfilled (zeros, uncovered).
        self.base = max(self.base, min(first, self.final_upto) - self.history_frames, stop - self._capacity)
        self.end = max(self.end, self.base)
        if stop - self._origin > self._values.shape[0]:
            shift = self.base - self._origin
            kept = self.end - self.base
            self._values[:kept] = self._values[shift : shift + kept]
            self._distance[:kept] = self._distance[shift : shift + kept]
            self._values[kept:] = 0.0
            self._distance[kept:] = np.inf
            self._origin = self.base
