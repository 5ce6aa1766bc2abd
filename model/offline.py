"""The official offline frame-to-event rule of the HTS-AT DESED evaluation.

One clip, one pass: the clip is zero-padded to 10 s (or cut to its first 10 s), the model runs
once, and only the frames that hold real audio are kept (`frames_for`). A detection target's
score (`stream.events.Target`: a class or a label group) is the max over its mapped model
classes; a frame is active when that score exceeds the target's on-threshold; each run of active
frames is one event, with no median filter. Frame k spans [k, k + 1) * 10/1024 s, so an event over
frames [start, end) runs from start * 10/1024 s to end * 10/1024 s.

Models of our own format may carry a median filter length tuned with their thresholds; given one (> 1),
the target scores of the kept frames are median-filtered before thresholding, as the stream's event
detector does (`stream.events.median_over_frames`). With 1 this is the official rule.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from model.htsat import FRAME_SECONDS, WINDOW_SAMPLES, frames_for
from stream.events import Target, median_over_frames


def runs_to_events(active: np.ndarray, labels: Sequence[str]) -> list[tuple[int, int, str]]:
    """Runs of active frames as (start frame, end frame exclusive, label), label by label.

    active: bool [T, G], one column per label.
    """
    if active.ndim != 2 or active.shape[1] != len(labels):
        raise ValueError(f"active must be [frames, {len(labels)}], got {list(active.shape)}")
    edges = np.diff(active.astype(np.int8), axis=0, prepend=0, append=0)  # [T + 1, G]: +1 at a start, -1 one past an end
    events = []
    for column, label in enumerate(labels):
        starts = np.flatnonzero(edges[:, column] == 1)
        ends = np.flatnonzero(edges[:, column] == -1)
        events.extend((int(start), int(end), label) for start, end in zip(starts, ends))
    return events


def target_scores(framewise: np.ndarray, targets: Sequence[Target]) -> np.ndarray:
    """Each target's score per frame: the max over its mapped classes. [T, C] -> [T, G]."""
    return np.stack([framewise[:, list(target.classes)].max(axis=1) for target in targets], axis=1)


def official_events(framewise: np.ndarray, targets: Sequence[Target], median_frames: int = 1) -> tuple[list[tuple[float, float, str]], np.ndarray]:
    """The official rule over framewise scores [T, C] from grid frame 0: events (onset s, offset s,
    label) and the target scores [T, G] (median-filtered when median_frames > 1)."""
    scores = median_over_frames(target_scores(framewise, targets), median_frames)  # [T, G]
    # Compared in the scores' precision (float32), as the official code compared a float32 map with Python floats.
    thresholds = np.array([target.on for target in targets], dtype=scores.dtype)  # [G]
    runs = runs_to_events(scores > thresholds, [target.name for target in targets])
    return [(start * FRAME_SECONDS, end * FRAME_SECONDS, label) for start, end, label in runs], scores


def events_from_scores(framewise: np.ndarray, n_samples: int, targets: Sequence[Target],
                       median_frames: int = 1) -> tuple[list[tuple[float, float, str]], np.ndarray]:
    """Events of one clip from the model's output for it, and the kept target scores.

    framewise: [1024, C] for the clip of `n_samples` samples zero-padded (or cut) to 10 s.
    Returns events as (onset s, offset s, label) and scores [frames of real audio, G].
    """
    return official_events(framewise[:frames_for(min(n_samples, WINDOW_SAMPLES))], targets, median_frames)


def fit_to_window(wave: np.ndarray) -> np.ndarray:
    """A clip as the model's one input: [N] -> [320000], zero-padded or cut to its first 10 s."""
    if wave.ndim != 1:
        raise ValueError(f"expected a mono clip [samples], got shape {list(wave.shape)}")
    window = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
    kept = min(len(wave), WINDOW_SAMPLES)
    window[:kept] = wave[:kept]
    return window


def detect_clip(model, wave: np.ndarray, targets: Sequence[Target], median_frames: int = 1) -> tuple[list[tuple[float, float, str]], np.ndarray]:
    """The official one-pass detection of a clip (float32 [N] at 32 kHz): events and kept scores."""
    framewise = model.predict(fit_to_window(wave), short="pad")["framewise"][0]  # [1024, C]
    return events_from_scores(framewise, len(wave), targets, median_frames)


def read_clip(path: str | Path) -> np.ndarray:
    """A whole audio file as 32 kHz mono float32 [N], conditioned exactly as the stream's file source does."""
    from stream.capture import CaptureStats, Conditioner, check_audio_file

    with check_audio_file(path) as handle:
        raw = handle.read(dtype="float32", always_2d=True)  # [frames, channels]
        rate = handle.samplerate
    return Conditioner(rate, CaptureStats()).process(raw, last=True)


def offline_timeline(model, wave: np.ndarray, batch_size: int = 4) -> np.ndarray:
    """The official pass over a recording of any length: [N] -> framewise scores [frames, C].

    The recording is cut into consecutive 10-s windows; each gets one pass (the last one
    zero-padded) and contributes its frames of real audio, laid end to end: window j's frame k is
    grid frame 1024 * j + k of the stream's 10/1024-s grid.
    """
    starts = range(0, len(wave), WINDOW_SAMPLES)
    parts = []
    for first in range(0, len(starts), batch_size):
        batch = starts[first:first + batch_size]
        windows = np.stack([fit_to_window(wave[start:start + WINDOW_SAMPLES]) for start in batch])  # [b, 320000]
        framewise = model.predict(windows, short="pad")["framewise"]  # [b, 1024, C]
        for row, start in enumerate(batch):
            parts.append(framewise[row, :frames_for(min(len(wave) - start, WINDOW_SAMPLES))])
    return np.concatenate(parts, axis=0)
