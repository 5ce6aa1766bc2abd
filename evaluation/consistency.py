"""Streaming against offline on the same recording: how far the live path strays from the official pass.

Offline: `htsat_live.model.offline_timeline`, one official pass per consecutive 10-s window, frames of
real audio laid end to end on the 10/1024-s grid; its events by the official rule (runs of frames over
each target's on-threshold, no filter).

Stream: the stream's windows on a hop (`stream.replay`: the scheduler with its first-10-s
policy, plus the zero-padded window over the tail that the live runner adds at the end of a stream),
run through the model, then fed one by one to a `Stitcher` and an `EventDetector` exactly as the live
stream runner does (without its threads and ring buffer, so the result does not depend on timing).
The stream's events are its `end` reports on final frames (a confirmed event that revised scores removed
ends with `final` false: the live view showed it, the final timeline holds no such event).

Compared: the stitched timeline against the offline framewise output on every grid frame both hold
(mean and max absolute difference over frames and classes), and the stream's events against the
offline events (micro event-based F1, `evaluation.metrics.event_based_f1`). At hop 10 s the windows are
the offline ones, so the timelines agree to float rounding; at other hops each frame comes from the
window in which it sits most centrally, which saw different context.
"""

from dataclasses import dataclass

import numpy as np

from htsat_live.evaluation.metrics import event_based_f1
from htsat_live.model.event_rule import official_events, offline_timeline
from htsat_live.stream.config import EventsConfig
from htsat_live.stream.events import EventDetector, median_frames_in_force
from htsat_live.stream.replay import FinalFrames, replay

Events = list[tuple[float, float, str]]  # (onset s, offset s, label)


@dataclass(frozen=True)
class Agreement:
    """Streaming vs offline on one recording at one hop."""

    name: str
    hop: float
    frames: int  # grid frames compared
    mean_abs: float  # mean |stream - offline| over frames x classes
    max_abs: float
    offline_events: int
    stream_events: int
    event_f1: float  # nan when neither side has an event


def stream_replay(
    model, wave: np.ndarray, events: EventsConfig, hop: float, batch_size: int = 4
) -> tuple[np.ndarray, Events]:
    """The stream's stitched timeline [frames, C] and final events for a whole recording [N]."""
    detector = EventDetector.from_config(events, model.labels, model.thresholds, model.median_frames)
    frames = FinalFrames(model.num_classes)
    timeline, reports = [], []
    for update in replay(model, wave, hop, batch_size):
        timeline.append(frames.apply(update))
        reports += detector.update(update, now=0.0)
    reports += detector.flush(now=0.0)
    final = [(r.onset, r.offset, r.label) for r in reports if r.state == "end" and r.final]
    return np.concatenate(timeline), sorted(final, key=lambda event: (event[2], event[0]))


def compare(model, recordings: dict[str, np.ndarray], events: EventsConfig, hop: float) -> list[Agreement]:
    """Streaming vs offline at one hop: a row per recording (name -> float32 [N] at 32 kHz), then,
    for several recordings, a row "all" pooling their frames and events."""
    targets = EventDetector.from_config(events, model.labels, model.thresholds, model.median_frames).targets
    labels = [target.name for target in targets]
    rows, differences, found_offline, found_stream = [], [], {}, {}
    for name, wave in recordings.items():
        offline = offline_timeline(model, wave)  # [frames, C]
        stream, found_stream[name] = stream_replay(model, wave, events, hop)
        frames = min(len(offline), len(stream))
        differences.append(np.abs(stream[:frames] - offline[:frames]))  # [frames, C]
        found_offline[name], _ = official_events(offline, targets, median_frames_in_force(events, model.median_frames))
        rows.append(_row(name, hop, differences[-1], found_offline, found_stream, [name], labels))
    if len(recordings) > 1:
        rows.append(
            _row("all", hop, np.concatenate(differences), found_offline, found_stream, list(recordings), labels)
        )
    return rows


def _row(
    name: str,
    hop: float,
    difference: np.ndarray,
    offline: dict[str, Events],
    stream: dict[str, Events],
    names: list[str],
    labels: list[str],
) -> Agreement:
    offline = {clip: offline[clip] for clip in names}
    stream = {clip: stream[clip] for clip in names}
    return Agreement(
        name,
        hop,
        len(difference),
        float(difference.mean()),
        float(difference.max()),
        sum(map(len, offline.values())),
        sum(map(len, stream.values())),
        event_based_f1(offline, stream, labels),
    )


def format_table(rows: list[Agreement]) -> str:
    width = max(len("file"), *(len(row.name) for row in rows))
    lines = [f"{'file':<{width}}    hop  frames   mean|d|    max|d|  offline ev  stream ev  event F1"]
    for row in rows:
        f1 = "     n/a" if np.isnan(row.event_f1) else f"{row.event_f1:8.4f}"
        lines.append(
            f"{row.name:<{width}}  {row.hop:5.2f}  {row.frames:6d}  {row.mean_abs:8.2e}  {row.max_abs:8.2e}"
            f"  {row.offline_events:10d}  {row.stream_events:9d}  {f1}"
        )
    return "\n".join(lines)
