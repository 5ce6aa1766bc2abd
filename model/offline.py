"""The official offline frame-to-event rule of the HTS-AT DESED evaluation.

One clip, one pass: the clip is zero-padded to 10 s (or cut to its first 10 s), the model runs
once, and only the frames that hold real audio are kept (`frames_for`). A label group's score is
the max over its mapped model classes; a frame is active when that score exceeds the group's
threshold; each run of active frames is one event, with no median filter. Frame k spans
[k, k + 1) * 10/1024 s, so an event over frames [start, end) runs from start * 10/1024 s to
end * 10/1024 s.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.htsat import FRAME_SECONDS, WINDOW_SAMPLES, frames_for


@dataclass(frozen=True)
class LabelGroups:
    """Detection targets: each label's model class indices and frame threshold."""

    labels: list[str]  # G
    indices: list[list[int]]  # per label, the model classes whose max is its score
    thresholds: np.ndarray  # [G]

    def __post_init__(self):
        if not (len(self.labels) == len(self.indices) == len(self.thresholds)) or not self.labels:
            raise ValueError("label groups need one index list and one threshold per label, and at least one label")
        if any(not group for group in self.indices):
            raise ValueError("every label group needs at least one model class")


def label_groups(events, labels: Sequence[str], model_thresholds: np.ndarray | None) -> LabelGroups:
    """The detection targets of an events config (`stream.config.EventsConfig`) for a model.

    Targets are the config's groups in file order, then (with `classes`) every model class not
    replaced by a group of the same name, in model order; `allow` and `deny` filter them. A
    target's threshold is `events.thresholds[name]`, else the model's threshold for a class, else
    `events.threshold`.
    """
    index_of = {label: i for i, label in enumerate(labels)}
    targets: dict[str, list[int]] = {}
    for name, members in events.groups.items():
        indices = []
        for member in members:
            if isinstance(member, int):
                if not 0 <= member < len(labels):
                    raise ValueError(f"events.groups.{name}: class index {member} out of range 0..{len(labels) - 1}")
                indices.append(member)
            elif member in index_of:
                indices.append(index_of[member])
            else:
                raise ValueError(f"events.groups.{name}: the model has no class {member!r}")
        targets[name] = indices
    if events.classes:
        for i, label in enumerate(labels):
            targets.setdefault(label, [i])
    for name in (*events.allow, *events.deny):
        if name not in targets:
            raise ValueError(f"events.allow/deny: {name!r} is not a detection target")
    names = [name for name in targets if (not events.allow or name in events.allow) and name not in events.deny]
    if not names:
        raise ValueError("the events config leaves no detection target")

    def threshold(name: str) -> float:
        if name in events.thresholds:
            return events.thresholds[name]
        if model_thresholds is not None and name in index_of and targets[name] == [index_of[name]]:
            return float(model_thresholds[index_of[name]])
        return events.threshold

    return LabelGroups(labels=names, indices=[targets[name] for name in names],
                       thresholds=np.array([threshold(name) for name in names]))


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


def group_scores(framewise: np.ndarray, groups: LabelGroups) -> np.ndarray:
    """Each group's score per frame: the max over its mapped classes. [T, C] -> [T, G]."""
    return np.stack([framewise[:, indices].max(axis=1) for indices in groups.indices], axis=1)


def events_from_scores(framewise: np.ndarray, n_samples: int, groups: LabelGroups) -> tuple[list[tuple[float, float, str]], np.ndarray]:
    """Events of one clip from the model's output for it, and the kept group scores.

    framewise: [1024, C] for the clip of `n_samples` samples zero-padded (or cut) to 10 s.
    Returns events as (onset s, offset s, label) and scores [frames of real audio, G].
    """
    kept = frames_for(min(n_samples, WINDOW_SAMPLES))
    scores = group_scores(framewise[:kept], groups)  # [kept, G]
    # Compared in the scores' precision (float32), as the official code compared a float32 map with Python floats.
    runs = runs_to_events(scores > groups.thresholds.astype(scores.dtype), groups.labels)
    return [(start * FRAME_SECONDS, end * FRAME_SECONDS, label) for start, end, label in runs], scores


def fit_to_window(wave: np.ndarray) -> np.ndarray:
    """A clip as the model's one input: [N] -> [320000], zero-padded or cut to its first 10 s."""
    if wave.ndim != 1:
        raise ValueError(f"expected a mono clip [samples], got shape {list(wave.shape)}")
    window = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
    kept = min(len(wave), WINDOW_SAMPLES)
    window[:kept] = wave[:kept]
    return window


def detect_clip(model, wave: np.ndarray, groups: LabelGroups) -> tuple[list[tuple[float, float, str]], np.ndarray]:
    """The official one-pass detection of a clip (float32 [N] at 32 kHz): events and kept scores."""
    framewise = model.predict(fit_to_window(wave), short="pad")["framewise"][0]  # [1024, C]
    return events_from_scores(framewise, len(wave), groups)


def read_clip(path: str | Path) -> np.ndarray:
    """A whole audio file as 32 kHz mono float32 [N], conditioned exactly as the stream's file source does."""
    from stream.capture import CaptureStats, Conditioner, check_audio_file

    with check_audio_file(path) as handle:
        raw = handle.read(dtype="float32", always_2d=True)  # [frames, channels]
        rate = handle.samplerate
    return Conditioner(rate, CaptureStats()).process(raw, last=True)
