"""Event sinks: JSON Lines, DESED-style TSV, Audacity label track, and WAV clips per event.

Every sink takes `write(event)` for each `stream.events.Event` report and `close()` at the end
(which flushes). Text sinks write each line at once and flush it, so a crash loses nothing.
- `JsonlSink` appends one JSON object per `start` and `end` report (a log of the session; `update`
  reports are left out, cancelled ends say `"cancelled": true`).
- `TsvSink` (filename, onset, offset, event_label; seconds, with a header) and `AudacitySink`
  (onset<TAB>offset<TAB>label) list the events that really ended; they are rewritten per run, since
  their times count from this run's first sample.
- `ClipSink` saves one WAV per ended event with `pre_roll` s before the onset and `post_roll` s
  after the offset. It holds no audio: the pipeline asks `due(available)` which clips can be cut
  now, reads their samples from the ring buffer, and hands them to `save`. Clips live in one
  directory under a disk cap; when a new clip would exceed it, the oldest clips go first.

`open_sinks(config, stream, filename)` builds the sinks a `SinksConfig` asks for.
"""

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from stream.config import SinksConfig
from stream.events import Event
from stream.stitch import SAMPLES_PER_FRAME

SAMPLE_RATE = 32000
CLIP_PREFIX = "htsat-"  # ClipSink only ever deletes files named like its own clips
WAV_HEADER_BYTES = 44


def _ended(event: Event) -> bool:
    return event.state == "end" and not event.cancelled


class _TextSink:
    def __init__(self, path: str | Path, mode: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, mode, encoding="utf-8")

    def _line(self, text: str) -> None:
        self._file.write(text + "\n")
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            self._file.close()


class JsonlSink(_TextSink):
    """Appends `start` and `end` reports as JSON objects, one per line, with the stream id."""

    def __init__(self, path: str | Path, stream: str):
        super().__init__(path, "a")
        self.stream = stream

    def write(self, event: Event) -> None:
        if event.state != "update":
            self._line(json.dumps({"stream": self.stream, **event.to_dict()}))


class TsvSink(_TextSink):
    """DESED-style TSV of ended events: filename, onset, offset, event_label (seconds)."""

    def __init__(self, path: str | Path, filename: str):
        super().__init__(path, "w")
        self.filename = filename
        self._line("filename\tonset\toffset\tevent_label")

    def write(self, event: Event) -> None:
        if _ended(event):
            self._line(f"{self.filename}\t{event.onset:.3f}\t{event.offset:.3f}\t{event.label}")


class AudacitySink(_TextSink):
    """Audacity label track of ended events: onset<TAB>offset<TAB>label (seconds)."""

    def __init__(self, path: str | Path):
        super().__init__(path, "w")

    def write(self, event: Event) -> None:
        if _ended(event):
            self._line(f"{event.onset:.6f}\t{event.offset:.6f}\t{event.label}")


@dataclass(frozen=True)
class ClipRequest:
    event: Event
    start: int  # first sample of the clip (onset minus pre-roll, at least 0)
    stop: int  # one past its last sample (offset plus post-roll)


class ClipSink:
    """WAV clip per ended event, under a disk cap with oldest-first deletion.

    write(event) queues a clip; due(available, stream_ended) returns the queued clips whose audio
    exists (all of them, cut at `available`, once the stream ended); save(request, audio,
    audio_start) writes one. Counters: `written`, `deleted` (by the cap), `skipped` (a clip larger
    than the cap on its own, or with no audio left in the ring), `unwritten` (still queued at close).
    """

    def __init__(self, directory: str | Path, stream: str, pre_roll: float, post_roll: float, max_mb: float,
                 sample_rate: int = SAMPLE_RATE):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.stream = stream
        self.pre = round(pre_roll * sample_rate)
        self.post = round(post_roll * sample_rate)
        self.max_bytes = int(max_mb * 1e6)
        self.sample_rate = sample_rate
        self._queue: list[ClipRequest] = []
        clips = sorted(self.directory.glob(f"{CLIP_PREFIX}*.wav"), key=lambda p: (p.stat().st_mtime, p.name))
        self._clips = [(path, path.stat().st_size) for path in clips]  # oldest first
        self.written = self.deleted = self.skipped = self.unwritten = 0

    @property
    def bytes_used(self) -> int:
        return sum(size for _, size in self._clips)

    def write(self, event: Event) -> None:
        if _ended(event):
            start = max(0, round(event.onset_frame * SAMPLES_PER_FRAME) - self.pre)
            stop = round(event.offset_frame * SAMPLES_PER_FRAME) + self.post
            self._queue.append(ClipRequest(event, start, stop))

    def due(self, available: int, stream_ended: bool = False) -> list[ClipRequest]:
        """Queued clips whose last sample exists (< available); with `stream_ended`, all of them,
        cut at `available`. Each request is returned once."""
        ready = [r for r in self._queue if r.stop <= available or stream_ended]
        self._queue = [r for r in self._queue if not (r.stop <= available or stream_ended)]
        return [r if r.stop <= available else ClipRequest(r.event, r.start, max(r.start, available)) for r in ready]

    def save(self, request: ClipRequest, audio: np.ndarray, audio_start: int) -> Path | None:
        """Write `audio` [n] (samples from `audio_start`, which is > request.start when the ring had
        already dropped the beginning) as the clip; returns its path, or None when skipped."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        size = WAV_HEADER_BYTES + 2 * audio.shape[0]
        if audio.shape[0] == 0 or size > self.max_bytes:
            self.skipped += 1
            return None
        while self._clips and self.bytes_used + size > self.max_bytes:
            oldest, _ = self._clips.pop(0)
            oldest.unlink(missing_ok=True)
            self.deleted += 1
        path = self.directory / self._name(request.event, audio_start)
        soundfile.write(path, np.clip(audio, -1.0, 1.0), self.sample_rate, subtype="PCM_16")
        self._clips.append((path, path.stat().st_size))
        self.written += 1
        return path

    def _name(self, event: Event, audio_start: int) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(event.onset_wall)) if math.isfinite(event.onset_wall) else "x"
        label = re.sub(r"[^A-Za-z0-9]+", "_", event.label).strip("_")
        stream = re.sub(r"[^A-Za-z0-9]+", "_", self.stream).strip("_")
        return f"{CLIP_PREFIX}{stamp}Z-{stream}-{event.id}-{label}-{audio_start / self.sample_rate:.2f}s.wav"

    def close(self) -> None:
        self.unwritten += len(self._queue)
        self._queue = []


class Sinks:
    """The sinks in force for one stream; `write` fans an event out to all of them."""

    def __init__(self, text_sinks: list, clips: ClipSink | None):
        self.text_sinks = text_sinks
        self.clips = clips

    def write(self, event: Event) -> None:
        for sink in self.text_sinks:
            sink.write(event)
        if self.clips is not None:
            self.clips.write(event)

    def close(self) -> None:
        for sink in self.text_sinks:
            sink.close()
        if self.clips is not None:
            self.clips.close()


def open_sinks(config: SinksConfig, stream: str, filename: str) -> Sinks:
    """The sinks `config` turns on; `filename` fills the TSV's filename column."""
    text_sinks = []
    if config.jsonl:
        text_sinks.append(JsonlSink(config.jsonl, stream))
    if config.tsv:
        text_sinks.append(TsvSink(config.tsv, filename))
    if config.audacity:
        text_sinks.append(AudacitySink(config.audacity))
    clips = None
    if config.clips_dir:
        clips = ClipSink(config.clips_dir, stream, config.pre_roll, config.post_roll, config.clips_max_mb)
    return Sinks(text_sinks, clips)
