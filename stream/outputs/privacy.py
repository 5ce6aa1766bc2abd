"""Privacy filter: audio that overlaps a privacy target (Speech by default) is not stored, or is silenced.

`[sinks] privacy`: "off"; "drop" (an event clip that overlaps an event of a privacy target is not
written); "mute" (the samples under such events are set to zero). A privacy target is "above its
threshold" exactly where the event detector reports an event of it (its own threshold, hysteresis,
median filter and minimum duration), provisional events included until they are cancelled: the
filter errs on the side of silence.

`PrivacyFilter` keeps, per stream, the sample spans of those events from the `event` messages it is
shown (`observe`: every message the sinks take), and how far the stream's scores are final
(`final_upto` of `scores`): audio is judged only once the scores over it are final (`judged_until`),
since until then a privacy event may still appear there. `apply(stream, audio, start)` returns the
audio as it may be stored (None to drop it). Whatever plays or stores audio takes it through one of
these: the clip sink does.
"""

import numpy as np

from htsat_live.model import SAMPLES_PER_FRAME
from htsat_live.stream.messages import EventMessage, Message


class PrivacyFilter:
    """Spans of privacy-target events per stream, and the audio they cover dropped or muted.

    Counters: `dropped` (pieces of audio refused), `muted` (pieces stored with samples silenced).
    """

    def __init__(self, mode: str, targets: tuple[str, ...]):
        if mode not in ("drop", "mute"):
            raise ValueError(f"privacy mode must be drop or mute, got {mode!r}")
        self.mode = mode
        self.targets = set(targets)
        self.dropped = self.muted = 0
        self.reset()

    def reset(self) -> None:
        """Forget every stream: no spans, nothing judged."""
        self._spans: dict[str, dict[int, tuple[int, int]]] = {}  # stream -> event id -> (first, stop) sample
        self._final: dict[str, int] = {}  # stream -> samples whose scores are final

    def observe(self, message: Message | EventMessage) -> None:
        """Take a pipeline message: events of privacy targets, and the final part of the scores."""
        stream = message.stream
        if message.topic == "scores":
            final = round(message.body["final_upto"] * SAMPLES_PER_FRAME)
            self._final[stream] = max(self._final.get(stream, 0), final)
        elif message.topic == "event" and message.event.label in self.targets:
            event, spans = message.event, self._spans.setdefault(stream, {})
            if event.cancelled:
                spans.pop(event.id, None)  # revised away: it never was there
            else:
                spans[event.id] = (
                    round(event.onset_frame * SAMPLES_PER_FRAME),
                    round(event.offset_frame * SAMPLES_PER_FRAME),
                )

    def judged_until(self, stream: str) -> int:
        """Audio before this sample of `stream` can be judged now (its scores are final)."""
        return self._final.get(stream, 0)

    def forget_before(self, stream: str, sample: int) -> None:
        """Spans that end before `sample` cannot touch audio still to come (the ring's oldest sample)."""
        spans = self._spans.get(stream, {})
        for event_id in [i for i, (_, stop) in spans.items() if stop <= sample]:
            del spans[event_id]

    def apply(self, stream: str, audio: np.ndarray, start: int) -> np.ndarray | None:
        """`audio` [n] (samples from `start`) as it may be stored: unchanged, muted under privacy
        events (a copy), or None (drop)."""
        stop = start + audio.shape[0]
        overlaps = [
            (max(first, start), min(last, stop))
            for first, last in self._spans.get(stream, {}).values()
            if first < stop and start < last
        ]
        if not overlaps:
            return audio
        if self.mode == "drop":
            self.dropped += 1
            return None
        muted = audio.copy()
        for first, last in overlaps:
            muted[first - start : last - start] = 0.0
        self.muted += 1
        return muted
