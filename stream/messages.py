"""The messages of docs/schema.md: their topics, schema version, envelope and bodies.

The core hands each message to the pipeline's outputs as a `Message` (topic, stream, body), and an
`event` message as an `EventMessage`, which carries the detector's report itself: its body, the dict
of docs/schema.md, is built by whoever reads it (an output that sends it on, a listener).
`event_message`, `scores_message` and `mel_message` turn pipeline data into message bodies (a
stream's `status` body is built by stream.status from its report). `message_json` wraps a body in
the envelope that every message carries (`schema`, `topic`, `stream`, `seq`, `sent_time`) and
writes it as the JSON text that stream.outputs.publish sends.
"""

import json
import math
import time
from dataclasses import dataclass

import numpy as np

from htsat_live.model import FRAME_SECONDS, HOP_LENGTH, SAMPLE_RATE
from htsat_live.stream.events import Event
from htsat_live.stream.stitch import TimelineUpdate

SCHEMA_VERSION = 1
TOPICS = ("event", "scores", "status", "mel")
MEL_FRAME_SECONDS = HOP_LENGTH / SAMPLE_RATE  # 0.01 s between log-mel columns


@dataclass(frozen=True)
class Message:
    """A message: its topic, its stream and its body; the body is without the envelope as the core hands it
    to its outputs, and with it as a stream.outputs.publish.Subscriber receives it."""

    topic: str
    stream: str
    body: dict


@dataclass(frozen=True)
class EventMessage:
    """An `event` message as the core hands it to its outputs: the detector's report as it is."""

    stream: str
    event: Event
    topic = "event"

    @property
    def body(self) -> dict:
        """The report as the body of docs/schema.md, built anew for each reader."""
        return event_message(self.event)


def message_json(topic: str, stream: str, seq: int, body: dict) -> str:
    """`body` in the envelope, as compact JSON sent now; NaN and inf become null (the schema has no NaN)."""
    message = {"schema": SCHEMA_VERSION, "topic": topic, "stream": stream, "seq": seq, "sent_time": time.time(), **body}
    try:
        return json.dumps(message, allow_nan=False, separators=(",", ":"))
    except ValueError:  # NaN or inf somewhere
        return json.dumps(_without_nonfinite(message), separators=(",", ":"))


def event_message(event: Event) -> dict:
    """Body of an `event` message."""
    return event.to_dict()


def scores_message(
    update: TimelineUpdate,
    clipwise: np.ndarray,
    labels: list[str],
    top_k: int,
    wall_time_start: float,
    window_start: int,
    window_samples: int,
    hop: float,
    window_wall_end: float,
    gated: bool = False,
) -> dict:
    """Body of a `scores` message: the changed frames of `update` for the top_k classes of the
    newest window's clipwise scores [C] (all classes, in index order, when top_k is 0).
    `wall_time_start` is the capture wall time of grid frame `update.start`, `window_wall_end` that
    of the newest window's last sample; `gated`: the newest window stayed below the level gate and was
    not run (its scores are 0)."""
    if top_k and top_k < clipwise.shape[0]:
        classes = np.argsort(-clipwise, kind="stable")[:top_k]
    else:
        classes = np.arange(clipwise.shape[0])
    return {
        "grid_start": update.start,
        "frame_seconds": FRAME_SECONDS,
        "wall_time_start": wall_time_start,
        "grid_end": update.end,
        "final_upto": update.final_upto,
        "classes": classes.tolist(),
        "labels": [labels[i] for i in classes],
        "frames": np.round(update.values[:, classes].astype(np.float64), 4).tolist(),
        "clipwise": np.round(clipwise[classes].astype(np.float64), 4).tolist(),
        "window_start": window_start,
        "window_samples": window_samples,
        "hop": hop,
        "window_wall_end": window_wall_end,
        "gated": gated,
    }


def mel_message(grid_start: int, columns: np.ndarray, wall_time_start: float) -> dict:
    """Body of a `mel` message: log-mel columns [n, bins] in dB from mel column `grid_start`."""
    return {
        "grid_start": grid_start,
        "frame_seconds": MEL_FRAME_SECONDS,
        "wall_time_start": wall_time_start,
        "bins": columns.shape[1],
        "frames": np.round(np.maximum(columns, -100.0).astype(np.float64), 1).tolist(),
    }


def _without_nonfinite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _without_nonfinite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nonfinite(v) for v in value]
    return value
