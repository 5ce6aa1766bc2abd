"""The event rule, from plain values: detection targets, median filter, thresholds, runs to events.

Both the live event detector (`stream`) and the offline paths (`detect-dir`, `tag`, training's tuning)
use these pieces, so that a recording gives the same events either way. Torch-free.

Targets. A detection target is a model class (named by its label) or a label group (several classes
under one name; its score is the max of its members' scores, as in the official DESED mapping).
`build_targets` resolves them from the model labels, the model's default thresholds and the settings:
on-threshold = an explicit one, else the model's threshold for a class, else `threshold`;
off-threshold = an explicit one, else `hysteresis` x on-threshold.

The official offline rule. One clip, one pass: the clip is zero-padded to 10 s (or cut to its first
10 s), the model runs once, and only the frames that hold real audio are kept (`frames_for`); a frame is
active when the target's score exceeds its on-threshold; each run of active frames is one event, with no
median filter. Frame k spans [k, k + 1) * 10/1024 s, so an event over frames [start, end) runs from
start * 10/1024 s to end * 10/1024 s. Models of our own format may carry a median filter length tuned
with their thresholds; given one (> 1), the target scores of the kept frames are median-filtered first,
as the live detector does. With 1 this is the official rule.
"""

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from htsat_live.model.timebase import (
    FRAME_SECONDS,
    WINDOW_SAMPLES,
    frames_for,
    zero_padded_batch,
)


class TargetError(ValueError):
    """A target setting that does not fit the model: `setting` names it ("" for the settings as a whole)."""

    def __init__(self, setting: str, problem: str):
        super().__init__(f"{setting}: {problem}" if setting else problem)
        self.setting = setting
        self.problem = problem


def near_misses(name: str, known: Iterable[str]) -> list[str]:
    """The known names closest to `name`, compared regardless of case: a typo's likely meaning."""
    by_folded: dict[str, str] = {}
    for candidate in known:
        by_folded.setdefault(candidate.casefold(), candidate)
    return [by_folded[k] for k in difflib.get_close_matches(name.casefold(), list(by_folded), n=3, cutoff=0.6)]


def _resolve_name(name: str, known: Sequence[str], setting: str, what: str, note: str = "") -> str:
    """`name` as spelled in `known`: itself, or the one name that differs from it only in case; else TargetError
    naming `setting` and suggesting the near misses."""
    if name in known:
        return name
    same = [candidate for candidate in known if candidate.casefold() == name.casefold()]
    if len(same) == 1:
        return same[0]
    close = near_misses(name, known)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise TargetError(setting, f"unknown {what} {name!r}{note}{hint}")


@dataclass(frozen=True)
class Target:
    name: str  # class label or group name
    classes: tuple[int, ...]  # model class indices whose max is the target's score
    on: float  # on-threshold
    off: float  # off-threshold (<= on)


def build_targets(
    labels: Sequence[str],
    model_thresholds: np.ndarray | None,
    *,
    classes: bool = True,
    groups: Mapping[str, Sequence[str | int]] = {},
    allow: Sequence[str] = (),
    deny: Sequence[str] = (),
    thresholds: Mapping[str, float] = {},
    off_thresholds: Mapping[str, float] = {},
    threshold: float = 0.5,
    hysteresis: float = 1.0,
) -> list[Target]:
    """The detection targets in force, or TargetError naming the setting that does not fit the model.

    classes: every model class is a target besides the groups; allow/deny: keep only / drop these
    targets; thresholds, off_thresholds: per target; threshold: for targets the model has no threshold for.
    """
    index = {label: i for i, label in enumerate(labels)}
    members: dict[str, tuple[int, ...]] = {}
    if classes:
        members.update((label, (i,)) for i, label in enumerate(labels))
    for name, group in groups.items():
        resolved = []
        for item in group:
            if isinstance(item, int):
                if not 0 <= item < len(labels):
                    raise TargetError(f"groups.{name}", f"class index {item} outside 0..{len(labels) - 1}")
                resolved.append(item)
            else:
                resolved.append(index[_resolve_name(item, labels, f"groups.{name}", "label")])
        members[name] = tuple(dict.fromkeys(resolved))
    # a target as the user types it: its own spelling, or one that differs only in case
    known, note = list(members), " (not a class label or group)"
    allow = [_resolve_name(name, known, "allow", "target", note) for name in allow]
    deny = [_resolve_name(name, known, "deny", "target", note) for name in deny]
    thresholds = {_resolve_name(name, known, "thresholds", "target", note): value for name, value in thresholds.items()}
    off_thresholds = {
        _resolve_name(name, known, "off_thresholds", "target", note): value for name, value in off_thresholds.items()
    }
    targets = []
    for name, members_of_target in members.items():
        if (allow and name not in allow) or name in deny:
            continue
        if name in thresholds:
            on = thresholds[name]
        elif len(members_of_target) == 1 and name == labels[members_of_target[0]] and model_thresholds is not None:
            on = float(model_thresholds[members_of_target[0]])
        else:
            on = threshold
        off = off_thresholds.get(name, on * hysteresis)
        if off > on:
            raise TargetError(f"off_thresholds.{name}", f"must be <= the on-threshold {on:g}, got {off:g}")
        targets.append(Target(name, members_of_target, on, off))
    if not targets:
        raise TargetError("", "no detection target left after allow/deny")
    return targets


def median_over_frames(scores: np.ndarray, median_frames: int) -> np.ndarray:
    """A median filter over a whole recording: [T, G] -> [T, G], each frame the median of the
    `median_frames` frames centred on it, the first and last frames repeated beyond the ends."""
    half = median_frames // 2
    if half == 0:
        return scores
    return windowed_median(scores[np.clip(np.arange(-half, len(scores) + half), 0, len(scores) - 1)], half)


def windowed_median(padded: np.ndarray, half: int) -> np.ndarray:
    """[n + 2 * half, G] -> [n, G] float32: the median of each run of 2 * half + 1 rows."""
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=0)  # [n, G, M]
    return np.median(windows, axis=-1).astype(np.float32)


def runs_to_events(active: np.ndarray, labels: Sequence[str]) -> list[tuple[int, int, str]]:
    """Runs of active frames as (start frame, end frame exclusive, label), label by label.

    active: bool [T, G], one column per label.
    """
    if active.ndim != 2 or active.shape[1] != len(labels):
        raise ValueError(f"active must be [frames, {len(labels)}], got {list(active.shape)}")
    edges = np.diff(
        active.astype(np.int8), axis=0, prepend=0, append=0
    )  # [T + 1, G]: +1 at a start, -1 one past an end
    events = []
    for column, label in enumerate(labels):
        starts = np.flatnonzero(edges[:, column] == 1)
        ends = np.flatnonzero(edges[:, column] == -1)
        events.extend((int(start), int(end), label) for start, end in zip(starts, ends))
    return events


def target_scores(framewise: np.ndarray, targets: Sequence[Target]) -> np.ndarray:
    """Each target's score per frame: the max over its mapped classes. [T, C] -> [T, G]."""
    return np.stack([framewise[:, list(target.classes)].max(axis=1) for target in targets], axis=1)


def official_events(
    framewise: np.ndarray, targets: Sequence[Target], median_frames: int = 1
) -> tuple[list[tuple[float, float, str]], np.ndarray]:
    """The official rule over framewise scores [T, C] from grid frame 0: events (onset s, offset s,
    label) and the target scores [T, G] (median-filtered when median_frames > 1)."""
    scores = median_over_frames(target_scores(framewise, targets), median_frames)  # [T, G]
    # Compared in the scores' precision (float32), as the official code compared a float32 map with Python floats.
    on = np.array([target.on for target in targets], dtype=scores.dtype)  # [G]
    runs = runs_to_events(scores > on, [target.name for target in targets])
    return [(start * FRAME_SECONDS, end * FRAME_SECONDS, label) for start, end, label in runs], scores


def events_from_scores(
    framewise: np.ndarray, n_samples: int, targets: Sequence[Target], median_frames: int = 1
) -> tuple[list[tuple[float, float, str]], np.ndarray]:
    """Events of one clip from the model's output for it, and the kept target scores.

    framewise: [1024, C] for the clip of `n_samples` samples zero-padded (or cut) to 10 s.
    Returns events as (onset s, offset s, label) and scores [frames of real audio, G].
    """
    return official_events(framewise[: frames_for(min(n_samples, WINDOW_SAMPLES))], targets, median_frames)


def detect_clip(
    model, wave: np.ndarray, targets: Sequence[Target], median_frames: int = 1
) -> tuple[list[tuple[float, float, str]], np.ndarray]:
    """The official one-pass detection of a clip (float32 [N] at 32 kHz, its first 10 s): events and kept scores."""
    framewise = model.predict(zero_padded_batch([wave[:WINDOW_SAMPLES]]), short="pad")["framewise"][0]  # [1024, C]
    return events_from_scores(framewise, len(wave), targets, median_frames)


def offline_timeline(model, wave: np.ndarray, batch_size: int = 4) -> np.ndarray:
    """The official pass over a recording of any length: [N] -> framewise scores [frames, C].

    The recording is cut into consecutive 10-s windows; each gets one pass (the last one
    zero-padded) and contributes its frames of real audio, laid end to end: window j's frame k is
    grid frame 1024 * j + k of the stream's 10/1024-s grid.
    """
    starts = range(0, len(wave), WINDOW_SAMPLES)
    parts = []
    for first in range(0, len(starts), batch_size):
        batch = starts[first : first + batch_size]
        windows = zero_padded_batch([wave[start : start + WINDOW_SAMPLES] for start in batch])  # [b, 320000]
        framewise = model.predict(windows, short="pad")["framewise"]  # [b, 1024, C]
        for row, start in enumerate(batch):
            parts.append(framewise[row, : frames_for(min(len(wave) - start, WINDOW_SAMPLES))])
    return np.concatenate(parts, axis=0)
