"""Local mode: the pipeline runs in this process and its messages reach the GUI thread through a
bounded queue, as the same schema-v1 bodies a subscriber would receive (docs/schema.md). Its audio is
at hand too, so an event can be listened to."""

import queue
import time

import numpy as np
import soundfile

from htsat_live.gui.live_data import EventBar
from htsat_live.model import SAMPLE_RATE
from htsat_live.stream.outputs.sinks import CLIP_PREFIX
from htsat_live.stream.ring import Overrun

SCHEMA_VERSION = 1
QUEUE_MESSAGES = 2000  # about half a minute of messages; beyond it new ones are dropped (a `seq` gap)


class LocalSource:
    """A MessageSource for a `stream.pipeline.Pipeline` whose outputs hold `Listener(source.listen)`
    (stream.output); `sinks` are the pipeline's stream.outputs.sinks.Sinks, if it has them (its clips and
    privacy filter).

    `listen` runs on the pipeline's threads and never blocks: when the GUI falls behind, messages are
    dropped and show up as gaps in `seq`, which the viewer counts as lost.
    """

    def __init__(self, description: str = "local pipeline", sinks=None):
        self.description = description  # how the connection field names this link
        self.sinks = sinks
        self.pipeline = None
        self._attached_at = 0.0  # time.time() when the pipeline started: older clips are another run's
        self._queue: queue.Queue[tuple[str, dict]] = queue.Queue(QUEUE_MESSAGES)
        self._seq: dict[str, int] = {}

    def attach(self, pipeline) -> None:
        """Take ownership of the pipeline: start it now, stop it on `close()`."""
        self.pipeline = pipeline
        self._attached_at = time.time()
        pipeline.start()

    def listen(self, topic: str, stream: str, body: dict) -> None:
        seq = self._seq.get(topic, 0)
        self._seq[topic] = seq + 1
        message = {
            "schema": SCHEMA_VERSION,
            "topic": topic,
            "stream": stream,
            "seq": seq,
            "sent_time": time.time(),
            **body,
        }
        try:
            self._queue.put_nowait((topic, message))
        except queue.Full:
            pass  # counted by the viewer from the gap in seq

    def poll(self, limit: int) -> list[tuple[str, dict]]:
        messages = []
        while len(messages) < limit:
            try:
                messages.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return messages

    def set_threshold(self, target: str, on: float) -> None:
        """Apply a threshold to the running pipeline's event detectors (shown on the next `status`)."""
        if self.pipeline is not None:
            self.pipeline.set_threshold(target, on)

    def event_audio(self, stream: str, event: EventBar) -> np.ndarray:
        """The audio of `event` of `stream` ([n] float32 at SAMPLE_RATE): from the stream's ring buffer
        while it holds the event (through the privacy filter when `sinks.privacy` is on), else its clip
        file (with its pre and post roll; the clip sink applied the filter) when clips are recorded.
        LookupError says why there is none."""
        runner = next((r for r in self.pipeline.runners if r.name == stream), None) if self.pipeline else None
        if runner is None:
            raise LookupError("the pipeline has stopped")
        ring = runner.ring
        start, stop = round(event.onset * SAMPLE_RATE), min(round(event.offset * SAMPLE_RATE), ring.end)
        try:
            return self._private(stream, ring.read(start, stop), start)
        except Overrun:
            pass
        clips = self.sinks.clips if self.sinks is not None else None
        held = f"the last {ring.capacity / SAMPLE_RATE:g} s of audio are held"
        if clips is None:
            raise LookupError(f"{held} and no clips are recorded (set sinks.clips_dir)")
        # clip names: htsat-STAMP-STREAM-ID-LABEL-START.wav (stream.outputs.clips); ids restart with every run
        for path in clips.directory.glob(f"{CLIP_PREFIX}*.wav"):
            parts = path.name.split("-")
            if len(parts) == 6 and parts[3] == str(event.event_id) and path.stat().st_mtime >= self._attached_at:
                audio, _ = soundfile.read(path, dtype="float32")
                return audio
        raise LookupError(f"{held} and the event's clip is not written (yet)")

    def _private(self, stream: str, audio: np.ndarray, start: int) -> np.ndarray:
        """`audio` as the privacy filter lets it be played, or LookupError saying why it may not."""
        privacy = self.sinks.privacy if self.sinks is not None else None
        if privacy is None:
            return audio
        if start + len(audio) > privacy.judged_until(stream):
            raise LookupError("the privacy filter has not judged it yet (its scores are not final)")
        allowed = privacy.apply(stream, audio, start)
        if allowed is None:
            raise LookupError(f"the privacy filter withholds it (it overlaps {', '.join(sorted(privacy.targets))})")
        return allowed

    def connection(self) -> tuple[str, bool]:
        if self.pipeline is None:
            return "pipeline not started", False
        return self.description, True

    def close(self) -> None:
        """Stop the pipeline: captures end, open events end, sinks are flushed."""
        if self.pipeline is not None:
            self.pipeline.stop()
            self.pipeline = None
