"""Loudness trigger: events of the target `Loud` whenever the input level passes a threshold.

The level is measured over consecutive windows of `window` seconds (125 ms by default): the mean
power of the window's samples, A-weighted by default, in dBFS as on `status` (20 log10 RMS: a
full-scale sine is -3 dBFS). A-weighting follows the IEC 61672 curve (0 dB at 1 kHz) exactly,
applied to each window's spectrum (by Parseval's theorem the weighted spectrum's power is the
weighted signal's); a recursive filter made by the bilinear transform would be 4 dB off at 10 kHz
at this sample rate. Within 0.1 dB from 100 Hz up; below, a tone's leakage between the window's
frequency bins reads a little high (+1.3 dB at 63 Hz).

An event starts when a window's level exceeds `threshold_dbfs`, lasts while the level stays above
`threshold_dbfs - hysteresis_db`, and is reported once it has lasted `min_duration` seconds; shorter
bursts are never reported. Levels come from captured audio and are never revised, so a `Loud`
event is final and confirmed from its `start`, and reports only `start` and `end`. Its `peak` is
the loudest window's level and its `mean` the level of its mean power, both in dBFS, `threshold` is
`threshold_dbfs`, and `classes` is empty.
"""

import time
from collections.abc import Callable

import numpy as np

from htsat_live.model import FRAME_SECONDS, SAMPLE_RATE, SAMPLES_PER_FRAME
from htsat_live.stream.config import LoudnessConfig
from htsat_live.stream.events import Event

LABEL = "Loud"
SILENCE_DBFS = -120.0  # the level of digital silence (as on status)
# IEC 61672 A-weighting: the pole frequencies of its analogue response, Hz
A_POLES_HZ = (20.598997, 107.65265, 737.86223, 12194.217)


def a_weighting(frequencies: np.ndarray) -> np.ndarray:
    """The A-weighting power gain |A(f)|^2 at `frequencies` (Hz), 1 at 1 kHz."""

    def response(f):
        f2 = np.asarray(f, dtype=np.float64) ** 2
        p1, p2, p3, p4 = (pole**2 for pole in A_POLES_HZ)
        return p4 * f2**2 / ((f2 + p1) * np.sqrt((f2 + p2) * (f2 + p3)) * (f2 + p4))

    return (response(frequencies) / response(1000.0)) ** 2


def window_powers(windows: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Mean power of each window [n, L] -> [n]; with `weights` (power gains of the rfft bins), of the
    weighted signal."""
    if weights is None:
        return np.mean(windows**2, axis=1)
    spectrum = np.abs(np.fft.rfft(windows, axis=1)) ** 2  # [n, L // 2 + 1]
    return spectrum @ weights / windows.shape[1] ** 2


def level_dbfs(power: float) -> float:
    return max(SILENCE_DBFS, 10.0 * float(np.log10(max(power, 1e-12))))


class LoudnessDetector:
    """Turns the audio of one stream into `Loud` events.

    update(audio, now=None) takes the next samples [n] of the stream (any block size) and returns
    the reports they cause; flush(now=None) ends an open event at the stream's last sample.
    `wall_time(sample)` maps a stream sample to its capture wall time, `new_id()` gives the event ids
    (shared with the stream's EventDetector, so ids stay unique per stream).
    """

    def __init__(
        self, config: LoudnessConfig, new_id: Callable[[], int], wall_time: Callable[[int], float] | None = None
    ):
        self.window = round(config.window * SAMPLE_RATE)  # samples per level window
        self.on_level = config.threshold_dbfs
        self.off_level = config.threshold_dbfs - config.hysteresis_db
        self.min_windows = max(1, round(config.min_duration * SAMPLE_RATE / self.window))
        self.weights = None  # power gain of each rfft bin of a window (its one-sided spectrum counted twice)
        if config.weighting == "A":
            self.weights = 2 * a_weighting(np.fft.rfftfreq(self.window, 1 / SAMPLE_RATE))
            self.weights[0] /= 2
            if self.window % 2 == 0:
                self.weights[-1] /= 2  # the Nyquist bin has no twin either
        self.new_id = new_id
        self.wall_time = wall_time or (lambda sample: sample / SAMPLE_RATE)
        self.reset()

    def reset(self) -> None:
        """Forget the stream: no partial window, no open event."""
        self._pending = np.zeros(0, np.float64)  # weighted samples of the window being filled
        self._position = 0  # stream sample of _pending[0]
        self._onset: int | None = None  # first sample of the open run
        self._powers: list[float] = []  # mean power of each window of the open run
        self._reported: Event | None = None  # its start, once reported
        self.level = SILENCE_DBFS  # of the newest complete window

    def update(self, audio: np.ndarray, now: float | None = None) -> list[Event]:
        now = time.time() if now is None else now
        pending = np.concatenate((self._pending, np.asarray(audio, dtype=np.float64).reshape(-1)))
        count = pending.shape[0] // self.window
        powers = window_powers(pending[: count * self.window].reshape(count, self.window), self.weights)  # [count]
        reports = []
        for power in powers.tolist():
            reports += self._take_window(power, now)
            self._position += self.window
        self._pending = pending[count * self.window :]
        return reports

    def flush(self, now: float | None = None) -> list[Event]:
        """The stream ended: an open, reported event ends at its last sample."""
        now = time.time() if now is None else now
        end = self._position + self._pending.shape[0]
        reports = [] if self._reported is None else [self._end(end, now)]
        self._onset, self._powers, self._reported = None, [], None
        return reports

    def _take_window(self, power: float, now: float) -> list[Event]:
        self.level = level_dbfs(power)
        if self._onset is None:
            if self.level > self.on_level:
                self._onset, self._powers = self._position, [power]
                return self._start_if_long_enough(now)
            return []
        if self.level <= self.off_level:
            reports = [] if self._reported is None else [self._end(self._position, now)]
            self._onset, self._powers, self._reported = None, [], None
            return reports
        self._powers.append(power)
        return self._start_if_long_enough(now)

    def _start_if_long_enough(self, now: float) -> list[Event]:
        if self._reported is not None or len(self._powers) < self.min_windows:
            return []
        self._reported = self._event(self.new_id(), "start", self._position + self.window, now, latency=None)
        return [self._reported]

    def _end(self, stop: int, now: float) -> Event:
        start = self._reported
        return self._event(start.id, "end", stop, now, latency=start.latency)

    def _event(self, id: int, state: str, stop: int, now: float, latency: float | None) -> Event:
        onset_frame = round(self._onset / SAMPLES_PER_FRAME)
        offset_frame = max(onset_frame + 1, round(stop / SAMPLES_PER_FRAME))
        onset_wall = self.wall_time(self._onset)
        if latency is None:  # the start: reported now
            latency = now - onset_wall
        return Event(
            id=id,
            state=state,
            label=LABEL,
            classes=(),
            onset_frame=onset_frame,
            offset_frame=offset_frame,
            onset=onset_frame * FRAME_SECONDS,
            offset=offset_frame * FRAME_SECONDS,
            onset_wall=onset_wall,
            offset_wall=self.wall_time(stop),
            peak=round(level_dbfs(max(self._powers)), 2),
            mean=round(level_dbfs(float(np.mean(self._powers))), 2),
            threshold=self.on_level,
            final=True,
            cancelled=False,
            latency=latency,
            confirmed=True,
            confirm_latency=latency,
        )
