"""Event detector: the stitched score timeline -> onset/offset events with start/update/end states.

Targets. A detection target is a model class (named by its label) or a label group from the config
(several classes under one name; its score is the max of its members' scores, as in the official
DESED mapping). `targets_from_config` resolves them from `EventsConfig`, the model labels and the
model's default thresholds with the shared event rule (`htsat_live.model.build_targets`): on-threshold =
config override, else the model's threshold for a class, else `events.threshold`; off-threshold =
config override, else `hysteresis` x on-threshold.

Per target and grid frame (10/1024 s), in this order:
1. median filter over `median_frames` frames (edges repeat the first / newest frame; the same filter as
   `htsat_live.model.median_over_frames` over a whole recording);
2. hysteresis: the target turns on at a score > on-threshold and off at a score <= off-threshold
   (with off = on this is "active while the score exceeds the threshold", the official rule);
3. runs of active frames separated by at most `gap_merge` seconds of inactive frames are merged;
4. merged runs shorter than `min_duration` seconds are dropped (`min_durations` sets it per target).
An event's `peak` and `mean` are taken over its active frames of the filtered score.

Streaming and revisions. Frames before the stitcher's `final_upto` never change, so the detector
runs steps 1-4 once over them, carrying a small per-target state (on/off, the open run) forward.
After each update it re-runs the same steps from that state over the provisional frames and
compares what it sees with the events it has reported:
- a new run (long enough) is reported at once as `start` (it may rest on provisional frames);
- a reported event whose onset, offset, peak or mean changed gets an `update`;
- it gets `end` once it is closed by final frames (followed by more than `gap_merge` of final
  inactive frames), or when the stream ends (`flush`);
- a reported event that revised scores no longer support (or that merged into another one) gets
  `end`: with `cancelled = True` while it is unconfirmed (below); once confirmed it is never withdrawn,
  it ends as an event at its last reported extent (the frames that supported it), with `final = False`.
  When a run overlaps several reported events, the confirmed one keeps it.
Events carry a stable id (1, 2, ... per detector), stream seconds and capture wall times, and the
latency of their `start`: wall time of reporting minus the capture time of the onset sample.

Confirmation. A `start` on provisional frames is early but may be revised away (on the demo at hop
1.25 s, 12 of 27 starts were). So that what shows state live never flaps, an event is *confirmed*
once any of these holds, and stays confirmed:
- it has been seen in `confirm_updates` consecutive updates (the update that started it counts);
- its peak reaches `confirm_ratio` x its on-threshold (clear evidence needs no waiting; 0 = never);
- it rests on final frames (every `end` that is not cancelled is confirmed).
Every report says whether its event is confirmed, and from then on carries `confirm_latency` (wall
time of confirmation minus the onset's capture time). When an event becomes confirmed without
another report, an `update` says so. `ConfirmedView` turns the reports into what a live display
shows: only confirmed events, each announced by a `start` when it becomes confirmed. A confirmed
event is never cancelled, so what a display showed always ends as an event: one confirmed at its end
(by final frames) shows its `start` and `end` at once.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import numpy as np

from htsat_live.model import (
    FRAME_SECONDS,
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    Target,
    TargetError,
    build_targets,
    windowed_median,
)
from htsat_live.stream.config import ConfigError, EventsConfig
from htsat_live.stream.stitch import TimelineUpdate


@dataclass(frozen=True)
class Event:
    """One report about an event; the fields of an `event` message (docs/schema.md)."""

    id: int
    state: str  # "start" | "update" | "end"
    label: str
    classes: tuple[int, ...]
    onset_frame: int
    offset_frame: int  # one past the last active frame
    onset: float  # stream seconds
    offset: float
    onset_wall: float  # capture wall time of the onset sample
    offset_wall: float
    peak: float
    mean: float
    threshold: float
    final: bool  # every frame it rests on is final
    cancelled: bool  # on "end": revised scores removed it
    latency: float  # wall time of its "start" report minus onset_wall
    confirmed: bool  # it passed the confirmation rule (module docstring)
    confirm_latency: float | None  # wall time it was confirmed minus onset_wall; None before

    def to_dict(self) -> dict:
        data = {item.name: getattr(self, item.name) for item in fields(self)}  # flat: asdict's deep copy is slow
        data["classes"] = list(self.classes)
        return data


def targets_from_config(config: EventsConfig, labels: list[str], model_thresholds: np.ndarray | None) -> list[Target]:
    """The detection targets of the config (model.build_targets), or ConfigError naming the setting."""
    try:
        return build_targets(
            labels,
            model_thresholds,
            classes=config.classes,
            groups=config.groups,
            allow=config.allow,
            deny=config.deny,
            thresholds=config.thresholds,
            off_thresholds=config.off_thresholds,
            threshold=config.threshold,
            hysteresis=config.hysteresis,
        )
    except TargetError as error:
        key = f"events.{error.setting}" if error.setting else "events"
        raise ConfigError(f"{key}: {error.problem}") from None


def median_frames_in_force(config: EventsConfig, model_median_frames: int) -> int:
    """The median filter length used: the config's, or the model's own when the config says 0."""
    return config.median_frames or model_median_frames


@dataclass
class _Run:
    """A merged run of active frames of one target (possibly still growing)."""

    onset: int
    end: int  # one past the last active frame
    peak: float
    total: float  # sum of scores over active frames
    count: int  # active frames

    def add(self, start: int, stop: int, scores: np.ndarray) -> None:
        self.end = stop
        self.peak = max(self.peak, float(scores.max()))
        self.total += float(scores.sum(dtype=np.float64))
        self.count += stop - start


@dataclass
class _Reported:
    """An event reported with `start` and not ended yet."""

    id: int
    target: int
    latency: float
    onset_wall: float
    last: Event | None = None
    matched: bool = False
    updates: int = 0  # detector updates it was seen in
    confirm_latency: float | None = None  # set when confirmed


class EventDetector:
    """Turns TimelineUpdates of one stream into Events.

    update(timeline_update, now=None) -> [Event]: new reports after one stitcher update;
    flush(now=None) -> [Event]: the stream ended, every open event ends;
    `wall_time(sample)` maps a stream sample index to its capture wall time (the ring buffer's
    `wall_time`); the default treats stream seconds as wall time (offline use).
    """

    def __init__(
        self,
        targets: list[Target],
        median_frames: int = 1,
        min_duration: float = 0.0,
        gap_merge: float = 0.0,
        wall_time: Callable[[int], float] | None = None,
        confirm_updates: int = 1,
        confirm_ratio: float = 0.0,
        min_durations: dict[str, float] | None = None,
    ):
        """`min_durations`: target name -> its minimum duration in seconds, for the targets named; the others
        take `min_duration`. A name that is no target is refused (ValueError naming it)."""
        if median_frames < 1 or median_frames % 2 == 0:
            raise ValueError(f"median_frames must be odd and >= 1, got {median_frames}")
        if confirm_updates < 1:
            raise ValueError(f"confirm_updates must be >= 1, got {confirm_updates}")
        self.targets = targets
        self.confirm_updates = confirm_updates
        self.confirm_ratio = confirm_ratio
        self.half = median_frames // 2  # frames of filter context on each side
        unknown = sorted(set(min_durations or {}) - {t.name for t in targets})
        if unknown:
            raise ValueError(f"min_durations: {', '.join(unknown)}: not a detection target")
        seconds = [(min_durations or {}).get(t.name, min_duration) for t in targets]
        self.min_frames = [max(1, math.ceil(s / FRAME_SECONDS - 1e-9)) for s in seconds]  # [T] per target
        self.gap_frames = math.floor(gap_merge / FRAME_SECONDS + 1e-9)
        self.wall_time = wall_time or (lambda sample: sample / SAMPLE_RATE)
        self._on = np.array([t.on for t in targets], dtype=np.float32)  # [T]
        self._off = np.array([t.off for t in targets], dtype=np.float32)  # [T]
        singles = [i for i, t in enumerate(targets) if len(t.classes) == 1]
        self._single_targets = np.array(singles, dtype=np.int64)
        self._single_classes = np.array([targets[i].classes[0] for i in singles], dtype=np.int64)
        self._groups = [(i, np.array(t.classes)) for i, t in enumerate(targets) if len(t.classes) > 1]
        # targets that are the classes c0, c0 + 1, ... in order read their scores as one slice of columns
        first_class = self._single_classes[0] if singles else 0
        in_order = len(singles) == len(targets) and np.array_equal(
            self._single_classes, np.arange(first_class, first_class + len(singles))
        )
        self._class_slice = slice(first_class, first_class + len(singles)) if in_order else None
        self.reset()

    @classmethod
    def from_config(
        cls,
        config: EventsConfig,
        labels: list[str],
        model_thresholds: np.ndarray | None,
        model_median_frames: int = 1,
        wall_time: Callable[[int], float] | None = None,
    ) -> "EventDetector":
        try:
            return cls(
                targets_from_config(config, labels, model_thresholds),
                median_frames_in_force(config, model_median_frames),
                config.min_duration,
                config.gap_merge,
                wall_time,
                config.confirm_updates,
                config.confirm_ratio,
                config.min_durations,
            )
        except ConfigError:
            raise
        except ValueError as error:  # a min_durations name that is no target
            raise ConfigError(f"events.{error}") from None

    def reset(self) -> None:
        """Forget the stream: no scores, no open runs, no reported events; ids start at 1 again."""
        count = len(self.targets)
        self._raw = np.zeros((4096, count), dtype=np.float32)  # [rows, T] target scores before filtering
        self._raw_base = 0  # grid frame of _raw row 0
        self._raw_end = 0  # one past the newest frame received
        self._position = 0  # frames before this went through the final pass
        self._active = np.zeros(count, dtype=bool)  # [T] hysteresis state after frame _position - 1
        self._runs: list[_Run | None] = [None] * count  # open run of each target after the final pass
        self._reported: list[_Reported] = []  # events started and not ended, in start order
        self._next_id = 1

    def new_id(self) -> int:
        """The next event id of the stream (other event sources of the stream take theirs here too)."""
        self._next_id += 1
        return self._next_id - 1

    def set_threshold(self, name: str, on: float) -> Target:
        """Change a target's on-threshold while the stream runs; its off-threshold keeps its ratio to it.

        Frames not yet through the final pass (and provisional ones) are judged by the new values.
        """
        index = next((i for i, target in enumerate(self.targets) if target.name == name), None)
        if index is None:
            raise ValueError(f"unknown detection target {name!r}")
        if not 0.0 <= on <= 1.0:
            raise ValueError(f"threshold for {name!r} must be in 0..1, got {on}")
        old = self.targets[index]
        off = on * (old.off / old.on) if old.on > 0 else on
        self.targets[index] = replace(old, on=on, off=off)
        self._on[index], self._off[index] = on, off
        return self.targets[index]

    def update(self, timeline: TimelineUpdate, now: float | None = None) -> list[Event]:
        """Take the changed frames of one stitcher update; returns the reports it causes."""
        self._receive(timeline)
        final_upto = min(max(timeline.final_upto, 0), self._raw_end)
        closed = self._final_pass(max(self._position, final_upto - self.half), stream_ended=False)
        return self._reconcile(closed, now)

    def flush(self, now: float | None = None) -> list[Event]:
        """The stream ended: all received frames are final and every open event ends."""
        closed = self._final_pass(self._raw_end, stream_ended=True)
        return self._reconcile(closed, now)

    def _receive(self, timeline: TimelineUpdate) -> None:
        start, stop = timeline.start, timeline.stop
        if stop > self._raw_end:
            self._ensure_rows(stop)
            self._raw[self._raw_end - self._raw_base : stop - self._raw_base] = 0.0  # frames nobody covered
        keep = max(start, self._raw_base)  # older frames are final and already used
        if stop > keep:
            self._raw[keep - self._raw_base : stop - self._raw_base] = self._target_scores(
                timeline.values[keep - start :]
            )
        self._raw_end = max(self._raw_end, stop)

    def _target_scores(self, values: np.ndarray) -> np.ndarray:
        """[n, C] class scores -> [n, T] target scores (max over a group's members)."""
        if self._class_slice is not None:
            return values[:, self._class_slice]
        scores = np.empty((values.shape[0], len(self.targets)), dtype=np.float32)
        scores[:, self._single_targets] = values[:, self._single_classes]
        for target, members in self._groups:
            scores[:, target] = values[:, members].max(axis=1)
        return scores

    def _ensure_rows(self, stop: int) -> None:
        keep_from = max(0, self._position - self.half)
        if stop - self._raw_base > self._raw.shape[0]:
            shift = keep_from - self._raw_base
            held = self._raw_end - keep_from
            self._raw[:held] = self._raw[shift : shift + held]
            self._raw_base = keep_from
        if stop - self._raw_base > self._raw.shape[0]:
            grown = np.zeros((2 * (stop - self._raw_base), self._raw.shape[1]), dtype=np.float32)
            grown[: self._raw_end - self._raw_base] = self._raw[: self._raw_end - self._raw_base]
            self._raw = grown

    def _filtered(self, start: int, stop: int, runs: list) -> np.ndarray | None:
        """Median-filtered target scores of frames [start, stop) -> [stop - start, T], for the scan from the
        state `self._active` and `runs`; None when no target can be on there (the scan has nothing to do).

        Only the targets the scan can need are filtered: those that are on, hold a run, or have a raw score
        above their on-threshold within reach of the filter (a median never exceeds its largest input, so no
        other target turns on there). The others read 0, which keeps them off just as their scores would.
        """
        first = max(start - self.half, 0)  # the frames the filter reads (the edges repeat the first / newest)
        last = min(stop + self.half, self._raw_end)
        reach = self._raw[first - self._raw_base : last - self._raw_base]  # [m, T] view
        needed = reach.max(axis=0) > self._on  # [T]
        needed |= self._active | np.array([run is not None for run in runs])
        if not needed.any():
            return None
        filtered = np.zeros((stop - start, len(self.targets)), dtype=np.float32)  # [n, T]
        columns = np.flatnonzero(needed)
        rows = np.clip(np.arange(start - self.half, stop + self.half), 0, self._raw_end - 1) - self._raw_base
        raw = self._raw[rows[:, None], columns]  # [n + 2 * half, N]
        filtered[:, columns] = raw if self.half == 0 else windowed_median(raw, self.half)
        return filtered

    def _final_pass(self, final_to: int, stream_ended: bool) -> list[tuple[int, _Run]]:
        """Advance the final state over frames [_position, final_to); returns the runs it closed."""
        closed: list[tuple[int, _Run]] = []
        if final_to > self._position:
            scores = self._filtered(self._position, final_to, self._runs)
            self._active = self._scan(self._position, scores, self._active, self._runs, closed)
            self._position = final_to
        if stream_ended:
            for target, run in enumerate(self._runs):
                if run is not None and run.end - run.onset >= self.min_frames[target]:
                    closed.append((target, run))
            self._runs = [None] * len(self.targets)
            self._active[:] = False
        return closed

    def _scan(self, start: int, scores: np.ndarray | None, active: np.ndarray, runs: list, closed: list) -> np.ndarray:
        """Run hysteresis and run merging over scores [n, T] of frames start..; updates `runs` in
        place, appends (target, run) for runs that closed, returns the state after the last frame.
        `scores` None (`_filtered`): no target is on, holds a run or turns on; nothing changes."""
        if scores is None or scores.shape[0] == 0:
            return active
        n = scores.shape[0]
        turns_on = scores > self._on  # [n, T]
        # Only targets that are on, hold a run, or turn on somewhere need the frame-by-frame state.
        open_run = np.array([run is not None for run in runs])
        busy = np.flatnonzero(turns_on.any(axis=0) | active | open_run)
        turns_on = turns_on[:, busy]  # [n, B]
        turns_off = scores[:, busy] <= self._off[busy]  # [n, B]
        last_switch = np.where(turns_on | turns_off, np.arange(n)[:, None], -1)  # [n, B]
        last_switch = np.maximum.accumulate(last_switch, axis=0)
        switched_on = np.take_along_axis(turns_on, np.maximum(last_switch, 0), axis=0)
        state = np.where(last_switch >= 0, switched_on, active[busy][None, :])  # [n, B] on after each frame
        stop = start + n
        for column_index, target in enumerate(busy.tolist()):
            column = state[:, column_index].astype(np.int8)
            edges = np.flatnonzero(np.diff(np.concatenate(([0], column, [0]))))
            run = runs[target]
            for begin, end in zip((edges[0::2] + start).tolist(), (edges[1::2] + start).tolist()):
                piece = scores[begin - start : end - start, target]
                if run is not None and begin - run.end <= self.gap_frames:
                    run.add(begin, end, piece)
                    continue
                if run is not None and run.end - run.onset >= self.min_frames[target]:
                    closed.append((target, run))
                run = _Run(begin, end, float(piece.max()), float(piece.sum(dtype=np.float64)), end - begin)
            if run is not None and stop - run.end > self.gap_frames:
                if run.end - run.onset >= self.min_frames[target]:
                    closed.append((target, run))
                run = None
            runs[target] = run
        after = np.zeros_like(active)  # targets not busy stay off
        after[busy] = state[-1]
        return after

    def _provisional_runs(self) -> list[tuple[int, _Run]]:
        """Runs seen when the final state is carried over the provisional frames (not kept)."""
        runs = [None if run is None else replace(run) for run in self._runs]
        seen: list[tuple[int, _Run]] = []
        if self._raw_end > self._position:
            self._scan(self._position, self._filtered(self._position, self._raw_end, runs), self._active, runs, seen)
        seen.extend(
            (t, run) for t, run in enumerate(runs) if run is not None and run.end - run.onset >= self.min_frames[t]
        )
        return seen

    def _reconcile(self, closed: list[tuple[int, _Run]], now: float | None) -> list[Event]:
        """Compare the runs now seen with the reported events; returns the reports that follow."""
        now = time.time() if now is None else now
        seen = [(target, run, True) for target, run in closed]
        seen += [(target, run, False) for target, run in self._provisional_runs()]
        seen.sort(key=lambda item: (item[1].onset, item[0]))
        open_by_target: dict[int, list[_Reported]] = {}
        for reported in sorted(self._reported, key=lambda r: r.confirm_latency is None):  # confirmed ones first
            reported.matched = False
            open_by_target.setdefault(reported.target, []).append(reported)
        reports = []
        for target, run, final in seen:
            match = next(
                (
                    r
                    for r in open_by_target.get(target, ())
                    if not r.matched and r.last.onset_frame < run.end and run.onset < r.last.offset_frame
                ),
                None,
            )
            new = match is None
            if new:
                onset_wall = self.wall_time(round(run.onset * SAMPLES_PER_FRAME))
                match = _Reported(self.new_id(), target, now - onset_wall, onset_wall)
                self._reported.append(match)
            match.updates += 1
            just_confirmed = self._confirm(match, run, final, now)
            if new:
                reports.append(self._event(match, run, "start", final=final))
            elif not final and (self._changed(match.last, run) or just_confirmed):
                reports.append(self._event(match, run, "update", final=False))
            match.matched = True
            if final:
                reports.append(self._event(match, run, "end", final=True))
        for reported in self._reported:
            if not reported.matched:  # revised away: withdrawn while unconfirmed, else it ends as it was last seen
                reports.append(
                    replace(reported.last, state="end", cancelled=reported.confirm_latency is None, final=False)
                )
        ended = {report.id for report in reports if report.state == "end"}
        self._reported = [r for r in self._reported if r.id not in ended]
        return reports

    def _confirm(self, reported: _Reported, run: _Run, final: bool, now: float) -> bool:
        """Apply the confirmation rule; True when the event became confirmed just now."""
        if reported.confirm_latency is not None:
            return False
        strong = self.confirm_ratio > 0 and run.peak >= self.confirm_ratio * self.targets[reported.target].on
        if final or strong or reported.updates >= self.confirm_updates:
            reported.confirm_latency = now - reported.onset_wall
            return True
        return False

    def _changed(self, last: Event, run: _Run) -> bool:
        return (last.onset_frame, last.offset_frame, last.peak, last.mean) != (
            run.onset,
            run.end,
            round(run.peak, 6),
            round(run.total / run.count, 6),
        )

    def _event(self, reported: _Reported, run: _Run, state: str, final: bool) -> Event:
        target = self.targets[reported.target]
        event = Event(
            id=reported.id,
            state=state,
            label=target.name,
            classes=target.classes,
            onset_frame=run.onset,
            offset_frame=run.end,
            onset=run.onset * FRAME_SECONDS,
            offset=run.end * FRAME_SECONDS,
            onset_wall=self.wall_time(round(run.onset * SAMPLES_PER_FRAME)),
            offset_wall=self.wall_time(round(run.end * SAMPLES_PER_FRAME)),
            peak=round(run.peak, 6),
            mean=round(run.total / run.count, 6),
            threshold=target.on,
            final=final,
            cancelled=False,
            latency=reported.latency,
            confirmed=reported.confirm_latency is not None,
            confirm_latency=reported.confirm_latency,
        )
        reported.last = event
        return event


class ConfirmedView:
    """What a live display shows of the event reports of its streams: confirmed events only.

    take(stream, event) -> the reports to show for one report: nothing while the event is unconfirmed;
    when it becomes confirmed, a copy with state `start` (and the report itself too if it is its
    `end`: an event confirmed only at its end shows both at once); afterwards the reports as they are.
    Only an unconfirmed event is ever cancelled (EventDetector), so what was shown ends as an event,
    and what was cancelled was never shown.
    """

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        """Forget which events were shown."""
        self._shown: set[tuple[str, int]] = set()  # (stream, id) shown with a start and not ended

    def take(self, stream: str, event: Event) -> list[Event]:
        if not event.confirmed:
            return []
        key = (stream, event.id)
        first = key not in self._shown
        if event.state == "end":
            self._shown.discard(key)
        else:
            self._shown.add(key)
        if not first:
            return [event]
        start = replace(event, state="start")
        return [start, event] if event.state == "end" else [start]
