"""Event sinks: JSON Lines, DESED-style TSV, Audacity label track, and WAV clips per event.

`Sinks` is the output of the pipeline (stream.output) that holds them: `Sinks.from_config(config.sinks)`,
then `handle(message)` for every message (it writes the `event` reports and ignores the rest),
`attach(stream, ring)` to let it cut clips from a stream's ring buffer, and `close()`. Each sink takes
`write(stream, event)` for each `stream.events.Event` report and flushes on `close()`; the text sinks
also write and flush each line at once, so a crash loses nothing.
- `JsonlSink` appends one JSON object per `start` and `end` report (a log of the session; `update`
  reports are left out, cancelled ends say `"cancelled": true`).
- `TsvSink` (filename, onset, offset, event_label; seconds, with a header; the filename column is
  the stream id, a file's name for file sources) and `AudacitySink` (onset<TAB>offset<TAB>label)
  list the events that really ended; they are rewritten per run, since their times count from the
  stream's first sample.
- `ClipSink` saves one WAV per ended event with `pre_roll` s before the onset and `post_roll` s
  after the offset. It holds no audio: `due(stream, available)` says which clips can be cut now,
  the caller reads their samples and hands them to `save`. `Sinks` does this itself from the
  attached rings whenever a message of that stream passes (status comes once a second), and once
  more at `close()`. Clips live in one directory under a disk cap; when a new clip would exceed
  it, the oldest clips go first.

- `clip_saved(stream, event_id, path)`, when given, hears of each clip written (the event store records
  the path with its event).
- With `privacy` "drop" or "mute" (stream.outputs.privacy.PrivacyFilter), a clip is cut only once the scores
  over it are final, and is not written, or has its samples silenced, where it overlaps an event
  of a privacy target.

Faults. A path that cannot be written at start (a read-only folder, a missing parent that cannot be
made) is a `SinkError` naming the setting. A write that fails later (no space left, a folder made
read-only) costs that one line or clip, never the stream or the other sinks: it is counted in the
sink's `failures` (see `Sinks.counters()`, shown on `status` under `sinks`) and logged as one line.
"""

import json
import logging
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from htsat_live.model import EVENT_HEADER, SAMPLE_RATE, SAMPLES_PER_FRAME, event_row
from htsat_live.stream.config import SinksConfig
from htsat_live.stream.events import Event
from htsat_live.stream.messages import EventMessage, Message
from htsat_live.stream.output import Output
from htsat_live.stream.outputs.privacy import PrivacyFilter
from htsat_live.stream.paths import OutputPathError, output_file, output_folder
from htsat_live.stream.ring import Overrun, RingBuffer

CLIP_PREFIX = "htsat-"  # ClipSink only ever deletes files named like its own clips
WAV_HEADER_BYTES = 44

log = logging.getLogger(__name__)


class SinkError(OSError):
    """A sink cannot be opened at start; the message names its setting and the path."""


def _failed(sink, what: str, error: Exception) -> None:
    """Count and log one write that failed; the sink and the stream go on."""
    sink.failures += 1
    sink.last_error = f"{what}: {getattr(error, 'strerror', None) or error}"
    if math.log10(sink.failures).is_integer():  # the 1st, 10th, 100th ...: a full disk does not flood the log
        log.warning("%s (failure %d of this sink)", sink.last_error, sink.failures)


def _ended(event: Event) -> bool:
    return event.state == "end" and not event.cancelled


class _TextSink:
    setting = ""  # its key under [sinks], for messages

    def __init__(self, path: str | Path, mode: str):
        self.path = Path(path)
        self.failures = 0
        self.last_error: str | None = None
        try:
            output_file(self.path, f"sinks.{self.setting}")
        except OutputPathError as error:
            raise SinkError(str(error)) from None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, mode, encoding="utf-8")
        except OSError as error:
            raise SinkError(f"sinks.{self.setting}: cannot write {self.path}: {error.strerror or error}") from None

    def _line(self, text: str) -> None:
        try:
            self._file.write(text + "\n")
            self._file.flush()
        except OSError as error:
            _failed(self, f"sinks.{self.setting}: writing {self.path}", error)

    def close(self) -> None:
        if not self._file.closed:
            try:
                self._file.close()  # flushes; the file is closed even when that fails
            except OSError as error:
                _failed(self, f"sinks.{self.setting}: closing {self.path}", error)


class JsonlSink(_TextSink):
    """Appends `start` and `end` reports as JSON objects, one per line, with the stream id."""

    setting = "jsonl"

    def __init__(self, path: str | Path):
        super().__init__(path, "a")

    def write(self, stream: str, event: Event) -> None:
        if event.state != "update":
            self._line(json.dumps({"stream": stream, **event.to_dict()}))


class TsvSink(_TextSink):
    """DESED-style TSV of ended events: filename, onset, offset, event_label (seconds)."""

    setting = "tsv"

    def __init__(self, path: str | Path):
        super().__init__(path, "w")
        self._line(EVENT_HEADER)

    def write(self, stream: str, event: Event) -> None:
        if _ended(event):
            self._line(event_row(stream, event.onset, event.offset, event.label))


class AudacitySink(_TextSink):
    """Audacity label track of ended events: onset<TAB>offset<TAB>label (seconds)."""

    setting = "audacity"

    def __init__(self, path: str | Path):
        super().__init__(path, "w")

    def write(self, stream: str, event: Event) -> None:
        if _ended(event):
            self._line(f"{event.onset:.6f}\t{event.offset:.6f}\t{event.label}")


@dataclass(frozen=True)
class ClipRequest:
    stream: str
    event: Event
    start: int  # first sample of the clip (onset minus pre-roll, at least 0)
    stop: int  # one past its last sample (offset plus post-roll)


class ClipSink:
    """WAV clip per ended event, under a disk cap with oldest-first deletion.

    write(stream, event) queues a clip; due(stream, available, stream_ended) returns that stream's
    queued clips whose audio exists (all of them, cut at `available`, once the stream ended);
    save(request, audio, audio_start) writes one. Counters: `written`, `deleted` (by the cap),
    `skipped` (a clip larger than the cap on its own, or with no audio left), `unwritten` (still
    queued at close), `failures` (a write that failed: no space, no permission).
    """

    def __init__(
        self, directory: str | Path, pre_roll: float, post_roll: float, max_mb: float, sample_rate: int = SAMPLE_RATE
    ):
        self.directory = Path(directory)
        try:
            output_folder(self.directory, "sinks.clips_dir")
        except OutputPathError as error:
            raise SinkError(str(error)) from None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SinkError(f"sinks.clips_dir: cannot make {self.directory}: {error.strerror or error}") from None
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise SinkError(f"sinks.clips_dir: cannot write to {self.directory}: permission denied")
        self.failures = 0
        self.last_error: str | None = None
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

    def write(self, stream: str, event: Event) -> None:
        if _ended(event):
            start = max(0, round(event.onset_frame * SAMPLES_PER_FRAME) - self.pre)
            stop = round(event.offset_frame * SAMPLES_PER_FRAME) + self.post
            self._queue.append(ClipRequest(stream, event, start, stop))

    def due(self, stream: str, available: int, stream_ended: bool = False) -> list[ClipRequest]:
        """Queued clips of `stream` whose last sample exists (< available); with `stream_ended`,
        all of them, cut at `available`. Each request is returned once."""
        ready = [r for r in self._queue if r.stream == stream and (r.stop <= available or stream_ended)]
        self._queue = [r for r in self._queue if not any(r is taken for taken in ready)]
        return [
            r if r.stop <= available else ClipRequest(r.stream, r.event, r.start, max(r.start, available))
            for r in ready
        ]

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
            try:
                oldest.unlink(missing_ok=True)
            except OSError as error:
                _failed(self, f"sinks.clips_dir: deleting {oldest}", error)
            self.deleted += 1
        path = self.directory / self._name(request, audio_start)
        try:
            soundfile.write(path, np.clip(audio, -1.0, 1.0), self.sample_rate, subtype="PCM_16")
            self._clips.append((path, path.stat().st_size))
        except (OSError, soundfile.LibsndfileError) as error:
            _failed(self, f"sinks.clips_dir: writing {path.name}", error)  # libsndfile says "System error"
            path.unlink(missing_ok=True)  # a partial clip is no clip
            return None
        self.written += 1
        return path

    def _name(self, request: ClipRequest, audio_start: int) -> str:
        event = request.event
        stamp = (
            time.strftime("%Y%m%dT%H%M%S", time.gmtime(event.onset_wall)) if math.isfinite(event.onset_wall) else "x"
        )
        label = re.sub(r"[^A-Za-z0-9]+", "_", event.label).strip("_")
        stream = re.sub(r"[^A-Za-z0-9]+", "_", request.stream).strip("_")
        return f"{CLIP_PREFIX}{stamp}Z-{stream}-{event.id}-{label}-{audio_start / self.sample_rate:.2f}s.wav"

    def close(self) -> None:
        self.unwritten += len(self._queue)
        self._queue = []


ClipSaved = Callable[[str, int, Path], None]  # (stream, event id, path of its clip)


class Sinks(Output):
    """The sinks in force, an output of the pipeline.

    handle(message): `event` reports go to every sink; any message of an attached stream also lets the
    clip sink cut the clips whose audio has arrived (through the privacy filter, which sees every message).
    attach(stream, ring, targets): the ring buffer clips of `stream` are cut from. close(): cuts the clips
    still due (cut at the stream's last sample), then closes and flushes every sink.
    """

    name = "sinks"

    def __init__(
        self,
        text_sinks: list,
        clips: ClipSink | None,
        privacy: PrivacyFilter | None = None,
        clip_saved: ClipSaved | None = None,
    ):
        self.text_sinks = text_sinks
        self.clips = clips
        self.privacy = privacy
        self.clip_saved = clip_saved
        self._rings: dict[str, RingBuffer] = {}

    @classmethod
    def from_config(cls, config: SinksConfig, clip_saved: ClipSaved | None = None) -> "Sinks":
        """The sinks `config` turns on (none when every path is empty); `clip_saved` hears of each clip."""
        text_sinks = []
        if config.jsonl:
            text_sinks.append(JsonlSink(config.jsonl))
        if config.tsv:
            text_sinks.append(TsvSink(config.tsv))
        if config.audacity:
            text_sinks.append(AudacitySink(config.audacity))
        clips = privacy = None
        if config.clips_dir:
            clips = ClipSink(config.clips_dir, config.pre_roll, config.post_roll, config.clips_max_mb)
        if config.privacy != "off":  # also without clips: whatever plays audio (the GUI) asks it too
            privacy = PrivacyFilter(config.privacy, config.privacy_targets)
        return cls(text_sinks, clips, privacy, clip_saved)

    def attach(self, stream: str, ring: RingBuffer, targets: list[str] = ()) -> None:
        """Cut the clips of `stream` from `ring`; its detection `targets` must hold the privacy targets."""
        if self.privacy is not None and not self.privacy.targets <= set(targets):
            unknown = ", ".join(sorted(self.privacy.targets - set(targets)))
            raise ValueError(f"sinks.privacy_targets: not a detection target of stream {stream}: {unknown}")
        self._rings[stream] = ring

    def counters(self) -> dict[str, int]:
        """Writes that failed, per sink setting, and the clips written and deleted by the cap."""
        counts = {f"{sink.setting}_failures": sink.failures for sink in self.text_sinks}
        if self.clips is not None:
            counts.update(
                clips_written=self.clips.written,
                clips_deleted=self.clips.deleted,
                clips_skipped=self.clips.skipped,
                clips_dir_failures=self.clips.failures,
            )
        if self.privacy is not None:
            counts.update(clips_privacy_dropped=self.privacy.dropped, clips_privacy_muted=self.privacy.muted)
        return counts

    def wants(self, topic: str) -> bool:
        """Events; and, to cut clips or judge their audio, what tells how far each stream has come: `scores`
        (the privacy filter reads their final part) and `status`."""
        if topic == "event":
            return True
        return topic in ("scores", "status") and (self.clips is not None or self.privacy is not None)

    def handle(self, message: Message | EventMessage) -> None:
        if self.privacy is not None:
            self.privacy.observe(message)
        if message.topic == "event":
            self.write(message.stream, message.event)
        self._cut_clips(message.stream, stream_ended=False)

    def write(self, stream: str, event: Event) -> None:
        for sink in self.text_sinks:
            sink.write(stream, event)
        if self.clips is not None:
            self.clips.write(stream, event)

    def close(self) -> None:
        for stream in self._rings:
            self._cut_clips(stream, stream_ended=True)
        for sink in self.text_sinks:
            sink.close()
        if self.clips is not None:
            self.clips.close()

    def _cut_clips(self, stream: str, stream_ended: bool) -> None:
        ring = self._rings.get(stream)
        if self.clips is None or ring is None:
            return
        available, ended = ring.end, stream_ended or ring.closed
        if self.privacy is not None and not stream_ended:  # audio waits until it can be judged
            available = min(available, self.privacy.judged_until(stream))
            ended = ended and available >= ring.end
        for request in self.clips.due(stream, available, ended):
            audio, start = np.zeros(0, np.float32), request.stop
            for _ in range(3):  # the writer may overwrite the beginning while we read: start later
                start = min(max(request.start, ring.oldest), request.stop)  # the ring may have dropped some
                try:
                    audio = ring.read(start, request.stop)
                    break
                except Overrun:
                    continue
            if self.privacy is not None:
                audio = self.privacy.apply(stream, audio, start)
                if audio is None:
                    continue
            path = self.clips.save(request, audio, start)
            if path is not None and self.clip_saved is not None:
                self.clip_saved(request.stream, request.event.id, path)
        if self.privacy is not None:
            self.privacy.forget_before(stream, ring.oldest)
