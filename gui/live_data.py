"""Everything the visualiser draws, built only from published messages (docs/schema.md).

Local and remote modes both hand each message to `LiveData.apply(topic, body)`: the spectrogram
history from `mel`, the per-class timeline, final/provisional boundary and clipwise scores from
`scores`, the event bars from `event`, the counters from `status`. Drawing code reads this object.

Two histories of each timeline: the live one at full resolution over the longest span, and an
archive of ARCHIVE_SECONDS at a coarser step (the maximum over a few frames), to scroll back through
when the view is paused. The archive of 527 classes takes tens of megabytes where full resolution
would take hundreds.

It shows one stream: the first one it hears (messages of other streams are counted and skipped).
When a topic's `seq` goes backwards the publisher has restarted and stream time begins again at 0:
the view starts afresh (the finished events kept for export stay).
"""

import math
import time
from dataclasses import dataclass, field

import numpy as np

from htsat_live.gui.history import FrameHistory
from htsat_live.model import WINDOW_SECONDS

SCHEMA_VERSION = 1
MEL_FLOOR_DB = -100.0  # the schema's floor of mel values
SPANS_SECONDS = (10, 20, 30, 60)  # the views offered
# The view's right edge trails the newest data by up to one hop (at most a window), so the history
# holds that much more than the longest span: the left edge is always drawn.
HISTORY_SECONDS = max(SPANS_SECONDS) + WINDOW_SECONDS
ARCHIVE_SECONDS = 12 * 60.0
MEL_POOL = 5  # mel columns per archived column (50 ms)
SCORE_POOL = 8  # score frames per archived frame (78 ms)


@dataclass
class EventBar:
    """One detected event as the lanes draw it; while it is open, `offset` is the end of its activity so far."""

    event_id: int
    label: str
    classes: tuple[int, ...]  # the model classes behind the label
    onset: float
    offset: float
    peak: float
    open: bool
    confirmed: bool  # it passed the detector's confirmation rule (its message's `confirmed`; else once it ended)


@dataclass
class MessageCounts:
    """Messages taken in, and those skipped because they could not be used (with the last reason)."""

    applied: int = 0
    skipped: int = 0
    other_streams: int = 0  # messages of streams other than the one shown
    missed: int = 0  # messages lost in transit, from gaps in each topic's `seq`
    restarts: int = 0  # publisher restarts seen (a topic's `seq` went backwards)
    last_error: str = ""
    last_seq: dict[str, int] = field(default_factory=dict)


class LiveData:
    def __init__(self, history_seconds: float = HISTORY_SECONDS, archive_seconds: float = ARCHIVE_SECONDS):
        self.history_seconds = history_seconds
        self.archive_seconds = archive_seconds
        self.mel: FrameHistory | None = None  # [L, bins] dB
        self.scores: FrameHistory | None = None  # [L, C] scores in [0, 1]
        self.finished: list[dict] = []  # the `end` message of every finished event, for export
        self.stream = ""  # the stream shown ("" until the first message)
        self.counts = MessageCounts()
        self.version = 0  # grows with every applied message, so drawing can tell when to redraw
        self.reset()

    def reset(self) -> None:
        """Forget the stream's timeline (histories, scores, open events, status); keeps `finished`,
        the stream followed and the message counts."""
        self.mel = self.archived_mel = None
        self.scores = self.archived_scores = None
        self.labels: list[str] = []  # label of each class index seen so far ("" where unknown)
        self.clipwise = np.zeros(0, dtype=np.float32)  # [C], the newest window's (0 for unsent classes)
        self.final_upto = 0.0  # stream seconds before which scores are final
        self.open_events: dict[int, EventBar] = {}  # event id -> its bar, while the event is open
        self.ended_events: list[EventBar] = []  # finished (not cancelled) events still in the archive
        self.status: dict = {}
        self.wall_offset: float | None = None  # wall time minus stream time
        self.advanced_at = 0.0  # time.monotonic() when `now` last moved forward

    @property
    def now(self) -> float:
        """Stream seconds of the newest audio seen (mel columns or score frames)."""
        ends = [h.end_seconds() for h in (self.mel, self.scores) if h is not None and h.end > 0]
        return max(ends, default=0.0)

    def events(self) -> list[EventBar]:
        return self.ended_events + list(self.open_events.values())

    def label(self, index: int) -> str:
        return self.labels[index] if index < len(self.labels) and self.labels[index] else f"class {index}"

    def apply(self, topic: str, body: dict) -> bool:
        """Take in one message; a malformed one is counted and skipped (returns False), never raised."""
        handler = {
            "mel": self._apply_mel,
            "scores": self._apply_scores,
            "event": self._apply_event,
            "status": self._apply_status,
        }.get(topic)
        try:
            if handler is None:
                raise ValueError(f"unknown topic {topic!r}")
            if body.get("schema") != SCHEMA_VERSION:
                raise ValueError(f"schema {body.get('schema')!r}, expected {SCHEMA_VERSION}")
            stream = str(body["stream"])
            if self.stream and stream != self.stream:
                self.counts.other_streams += 1
                return False
            self.stream = stream
            self._follow_seq(topic, body.get("seq"))
            before = self.now
            handler(body)
        except (KeyError, TypeError, ValueError, IndexError) as error:
            self.counts.skipped += 1
            self.counts.last_error = f"{topic}: {type(error).__name__}: {error}"
            return False
        if self.now > before:
            self.advanced_at = time.monotonic()
        self.counts.applied += 1
        self.version += 1
        return True

    def _follow_seq(self, topic: str, seq) -> None:
        """Count messages lost in transit; start afresh when the publisher restarted."""
        if not isinstance(seq, int):
            return
        previous = self.counts.last_seq.get(topic)
        if previous is not None and seq <= previous:
            self.counts.restarts += 1
            self.counts.last_seq = {}
            self.reset()
        elif previous is not None and seq > previous + 1:
            self.counts.missed += seq - previous - 1
        self.counts.last_seq[topic] = seq

    def _apply_mel(self, body: dict) -> None:
        frames = np.asarray(body["frames"], dtype=np.float32)  # [n, bins]
        bins, seconds = int(body["bins"]), float(body["frame_seconds"])
        if frames.ndim != 2 or frames.shape[1] != bins or not np.all(np.isfinite(frames)):
            raise ValueError(f"mel frames of shape {frames.shape} for {bins} bins (or not finite)")
        if self.mel is None or self.mel.width != bins or self.mel.frame_seconds != seconds:
            self.mel = FrameHistory(math.ceil(self.history_seconds / seconds), bins, seconds, fill=MEL_FLOOR_DB)
            self.archived_mel = self._archive_of(self.mel, MEL_POOL)
        start = int(body["grid_start"])
        self.mel.write(start, frames)
        self.archived_mel.write(*self.mel.pooled(start, start + len(frames), MEL_POOL))
        self.wall_offset = float(body["wall_time_start"]) - start * seconds

    def _apply_scores(self, body: dict) -> None:
        classes = np.asarray(body["classes"], dtype=np.int64)  # [K]
        frames = np.asarray(body["frames"], dtype=np.float32).reshape(-1, len(classes))  # [n, K], null -> nan
        clipwise = np.asarray(body["clipwise"], dtype=np.float32)  # [K]
        if clipwise.shape != classes.shape or len(body["labels"]) != len(classes) or np.any(classes < 0):
            raise ValueError("classes, labels and clipwise differ in length (or a class index is negative)")
        seconds = float(body["frame_seconds"])
        self._ensure_classes(int(classes.max(initial=-1)) + 1, seconds)
        for index, label in zip(classes, body["labels"]):
            self.labels[index] = label
        start = int(body["grid_start"])
        self.scores.write(start, np.nan_to_num(np.clip(frames, 0.0, 1.0)), columns=classes)
        self.archived_scores.write(*self.scores.pooled(start, start + len(frames), SCORE_POOL))
        self.clipwise[:] = 0.0
        self.clipwise[classes] = np.nan_to_num(clipwise)
        self.final_upto = int(body["final_upto"]) * seconds
        self.wall_offset = float(body["wall_time_start"]) - start * seconds

    def _ensure_classes(self, count: int, frame_seconds: float) -> None:
        """Grow the per-class state to hold `count` classes, keeping what is already held."""
        old, old_archive = self.scores, self.archived_scores
        if old is not None and old.width >= count and old.frame_seconds == frame_seconds:
            return
        count = max(count, old.width if old is not None else 0)
        self.scores = FrameHistory(math.ceil(self.history_seconds / frame_seconds), count, frame_seconds)
        self.archived_scores = self._archive_of(self.scores, SCORE_POOL)
        if old is not None and old.frame_seconds == frame_seconds:
            for new, held in ((self.scores, old), (self.archived_scores, old_archive)):
                new.write(held.end - held.length, held.view(), columns=np.arange(held.width))
        self.labels += [""] * (count - len(self.labels))
        self.clipwise = np.concatenate([self.clipwise, np.zeros(count - len(self.clipwise), np.float32)])

    def _archive_of(self, history: FrameHistory, pool: int) -> FrameHistory:
        """An empty archive for `history`: frames of `pool` of its frames, ARCHIVE_SECONDS long."""
        seconds = pool * history.frame_seconds
        return FrameHistory(math.ceil(self.archive_seconds / seconds), history.width, seconds, fill=history.fill)

    def _apply_event(self, body: dict) -> None:
        event_id, state = int(body["id"]), body["state"]
        if state not in ("start", "update", "end"):
            raise ValueError(f"event state {state!r}")
        classes = tuple(int(c) for c in body["classes"])
        if not classes:
            raise ValueError("event without classes")
        bar = EventBar(
            event_id=event_id,
            label=str(body["label"]),
            classes=classes,
            onset=float(body["onset"]),
            offset=float(body["offset"]),
            peak=float(body["peak"]),
            open=state != "end",
            confirmed=bool(body.get("confirmed", state == "end")),
        )
        if state != "end":
            self.open_events[event_id] = bar
            return
        self.open_events.pop(event_id, None)
        if not body.get("cancelled", False):
            self.ended_events.append(bar)
            self.finished.append(body)
        horizon = self.now - self.archive_seconds
        self.ended_events = [e for e in self.ended_events if e.offset >= horizon]

    def _apply_status(self, body: dict) -> None:
        self.status = body
        count = body.get("num_classes")
        if isinstance(count, int) and count > 0 and self.scores is not None:
            self._ensure_classes(count, self.scores.frame_seconds)
        if isinstance(body.get("final_upto"), int) and self.scores is not None:
            self.final_upto = max(self.final_upto, body["final_upto"] * self.scores.frame_seconds)
