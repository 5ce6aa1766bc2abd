"""Audio sources that fill a RingBuffer with 32 kHz mono float32 samples.

- `MicrophoneSource`: a sounddevice/PortAudio input (device by index or name substring) at its native
  rate and channel count. The PortAudio callback only copies the interleaved block into a small
  staging ring and counts status flags; a supervisor thread mixes to mono, zeroes NaN/inf, resamples
  with a stateful soxr stream, writes the stream ring, and reopens the device with backoff when it
  errors, disappears or stops delivering.
- `FileSource`: any file soundfile reads, any rate and channel count, paced in real time or fed as fast
  as the consumer takes it.
- `FfmpegSource`: anything ffmpeg reads (`ffmpeg:URL`), decoded by an ffmpeg subprocess to 32 kHz
  mono float32; a network stream that drops is reconnected with backoff.

Each source owns its threads (`start(ring)` / `stop()`) and counts what happened in `stats`.
`open_source(spec)` turns a command-line SOURCE into a source.
"""

import logging
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from htsat_live.model import (
    SAMPLE_RATE,
    AudioFileError,
    Conditioner,
    check_audio_file,
    read_blocks,
)
from htsat_live.stream.ring import RingBuffer

log = logging.getLogger(__name__)


class CaptureError(Exception):
    """A source cannot be opened or read (unknown device, missing/empty/corrupt file, no ffmpeg)."""


class NoMicrophone(CaptureError):
    """There is no input device, or the default input cannot be opened."""


@dataclass
class CaptureStats:
    """Counters of one source; each field is written by one thread only."""

    state: str = "starting"  # starting, running, reconnecting, error, ended, stopped
    input_rate: int | None = None  # native rate of the source
    input_channels: int | None = None
    samples: int = 0  # 32 kHz samples written to the stream ring
    nonfinite_samples: int = 0  # NaN/inf samples replaced by 0
    clipped_samples: int = 0  # samples at full scale
    input_overflows: int = 0  # PortAudio "input overflow" flags
    status_flags: int = 0  # callbacks with any PortAudio status flag
    staging_overruns: int = 0  # the supervisor fell behind the audio callback
    errors: int = 0
    reconnects: int = 0  # successful reopen/reconnect after a failure
    gap_seconds: float = 0.0  # wall time a live input (microphone, network stream) lost before it came back
    loops: int = 0  # times a finite input started again from its beginning (loop)
    last_error: str | None = None


class Backoff:
    """Delays between reconnection attempts: initial, doubled after each failure, capped."""

    def __init__(self, initial: float = 0.25, maximum: float = 8.0):
        self.initial = initial
        self.maximum = maximum
        self.reset()

    def reset(self) -> None:
        self._next = self.initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self.maximum, self._next * 2)
        return delay


class Source:
    """Base of the sources: a description, counters, and a thread the source owns.

    A source fed faster than real time (a file, `realtime=False`) follows the consumer of its ring: once
    the consumer sets the ring's `consumer_position` (the sample index it has reached), the source stays
    at most `max_ahead` samples ahead of it (default: half the ring), so that nothing is overwritten.
    """

    def __init__(self, description: str, max_ahead: int | None = None):
        self.description = description
        self.stats = CaptureStats()
        self.max_ahead = max_ahead
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ring: RingBuffer | None = None
        self._last_audio = time.monotonic()  # when samples last came in: where a gap starts

    def start(self, ring: RingBuffer) -> None:
        if ring.sample_rate != SAMPLE_RATE:
            raise ValueError(f"the stream ring must run at {SAMPLE_RATE} Hz, not {ring.sample_rate}")
        self.ring = ring
        self._stop.clear()
        self._thread = threading.Thread(target=self._run_guarded, name=f"capture {self.description}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._interrupt()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.stats.state not in ("ended", "error"):
            self.stats.state = "stopped"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run_guarded(self) -> None:
        try:
            self._run()
        except Exception as error:  # a source that cannot go on says why and ends the stream
            self._report(f"{type(error).__name__}: {error}")
            self.stats.state = "error"
        finally:
            self.ring.close()

    def _report(self, message: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = message
        log.warning("%s: %s", self.description, message)

    def _write(self, samples: np.ndarray, capture_time: float | None = None) -> None:
        if samples.size:
            self.ring.write(samples, capture_time)
            self.stats.samples += samples.size
            self._last_audio = time.monotonic()

    def _resumed(self) -> None:
        """Audio flows again after a failure: count the reconnect and the wall time it left without audio."""
        self.stats.reconnects += 1
        self.stats.gap_seconds += time.monotonic() - self._last_audio

    def _follow_consumer(self, n: int) -> None:
        """Wait until `n` more samples keep the source within `max_ahead` of the ring's consumer, if it has one."""
        limit = self.max_ahead if self.max_ahead is not None else self.ring.capacity // 2
        while not self._stop.is_set():
            position = self.ring.consumer_position
            if position is None or self.ring.end + n - position <= limit:
                return
            self._stop.wait(0.002)

    def _run(self) -> None:
        """Each source reads its input here, on its own thread, until `_stop` is set or the input ends."""
        raise NotImplementedError

    def _interrupt(self) -> None:
        """Wake the source thread out of a blocking call so that it sees the stop."""


# --- microphone ---------------------------------------------------------------------------------


def _sounddevice():
    try:
        import sounddevice
    except OSError as error:  # the PortAudio library itself is missing
        raise NoMicrophone(f"PortAudio is not available ({error}); install libportaudio2") from error
    return sounddevice


def input_devices() -> list[dict]:
    """The input devices PortAudio sees: dicts with index, name, max_input_channels, default_samplerate."""
    sd = _sounddevice()
    return [dict(device) for device in sd.query_devices() if device["max_input_channels"] > 0]


def resolve_device(spec: int | str | None) -> dict:
    """The input device named by `spec`: None = the default input, an index, or a name substring."""
    sd = _sounddevice()
    devices = input_devices()
    if not devices:
        raise NoMicrophone("no audio input device found")
    if spec is None:
        default = sd.default.device[0]
        if default is None or default < 0:
            raise NoMicrophone("no default audio input device")
        spec = int(default)
    if isinstance(spec, str) and spec.strip().isdigit():
        spec = int(spec)
    if isinstance(spec, int):
        for device in devices:
            if device["index"] == spec:
                return device
        raise CaptureError(f"no input device with index {spec}; inputs: {_device_list(devices)}")
    exact = [device for device in devices if device["name"].lower() == spec.lower()]
    matches = exact or [device for device in devices if spec.lower() in device["name"].lower()]
    if not matches:
        raise CaptureError(f"no input device matches {spec!r}; inputs: {_device_list(devices)}")
    if len(matches) > 1:
        raise CaptureError(f"input device {spec!r} is ambiguous: {_device_list(matches)}")
    return matches[0]


def _device_list(devices: list[dict]) -> str:
    return ", ".join(f"[{device['index']}] {device['name']}" for device in devices)


class MicrophoneSource(Source):
    """A PortAudio input device, reopened with backoff when it errors, vanishes or stalls."""

    def __init__(
        self,
        device: int | str | None = None,
        samplerate: int | None = None,
        channels: int | None = None,
        block_seconds: float = 0.02,
        stall_seconds: float = 5.0,
        backoff: Backoff | None = None,
    ):
        info = resolve_device(device)
        super().__init__("mic" if device is None else f"mic:{device}")
        self.device_name = info["name"]
        self.samplerate = int(samplerate or info["default_samplerate"])
        self.channels = int(channels or min(2, info["max_input_channels"]))
        self.block_seconds = block_seconds
        self.stall_seconds = stall_seconds
        self.backoff = backoff or Backoff()
        self.stats.input_rate = self.samplerate
        self.stats.input_channels = self.channels
        self._failed = threading.Event()  # set by PortAudio when the stream ends on its own

    def _run(self) -> None:
        conditioner = Conditioner(self.samplerate, self.stats)
        failures = 0
        while not self._stop.is_set():
            try:
                stream, staging, last_callback = self._open(rescan=failures >= 2)
            except Exception as error:
                failures += 1
                self.stats.state = "reconnecting"
                self._report(f"cannot open input {self.device_name!r}: {error}")
                self._stop.wait(self.backoff.next())
                continue
            conditioner.reset()
            try:
                failure = self._pump(stream, staging, last_callback, conditioner, reopened=failures > 0)
            finally:
                try:
                    stream.close()
                except Exception as error:  # the device is already gone; nothing left to release
                    log.debug("closing %s: %s", self.device_name, error)
            if failure is None:
                return
            failures += 1
            self.stats.state = "reconnecting"
            self._report(failure)
            self._stop.wait(self.backoff.next())

    def _open(self, rescan: bool):
        """Open and start the input: (stream, staging ring the callback fills, [last callback time])."""
        sd = _sounddevice()
        if rescan:  # PortAudio lists devices once; rescanning finds a device that was plugged back in
            sd._terminate()
            sd._initialize()
        device = resolve_device(self.device_name)
        capacity = int(self.samplerate * 2.0) * self.channels  # 2 s of interleaved frames
        staging = RingBuffer(capacity, self.samplerate * self.channels)
        self._failed.clear()
        stats = self.stats
        rate = self.samplerate
        last_callback = [time.monotonic()]

        def callback(indata, frames, time_info, status):
            if status:
                stats.status_flags += 1
                if status.input_overflow:
                    stats.input_overflows += 1
            lag = time_info.currentTime - time_info.inputBufferAdcTime
            lag = lag if 0.0 <= lag < 1.0 else 0.0
            staging.write(indata.reshape(-1), time.time() - lag + (frames - 1) / rate)
            last_callback[0] = time.monotonic()

        stream = sd.InputStream(
            device=device["index"],
            samplerate=self.samplerate,
            channels=self.channels,
            dtype="float32",
            blocksize=int(self.samplerate * self.block_seconds),
            callback=callback,
            finished_callback=self._failed.set,
        )
        stream.start()
        return stream, staging, last_callback

    def _pump(
        self, stream, staging: RingBuffer, last_callback: list[float], conditioner: Conditioner, reopened: bool
    ) -> str | None:
        """Move audio from the staging ring to the stream ring until stop (None) or a failure (why)."""
        reader = staging.reader(start=0)
        flowing = False
        while not self._stop.is_set():
            staging.wait_for(reader.position + self.channels, timeout=0.05)
            overruns = reader.overruns
            block = reader.read()
            self.stats.staging_overruns += reader.overruns - overruns
            if block.samples.size:
                if not flowing:
                    flowing = True
                    self.stats.state = "running"
                    self.backoff.reset()
                    if reopened:
                        self._resumed()
                frames = block.samples.reshape(-1, self.channels)  # [frames, channels]
                end = block.start + block.samples.size
                self._write(conditioner.process(frames), staging.wall_time(end - 1))
                continue
            if self._failed.is_set() or not stream.active:
                return f"input {self.device_name!r} stopped (device error or disconnected)"
            if time.monotonic() - last_callback[0] > self.stall_seconds:  # no callback since (or since opening)
                return f"input {self.device_name!r} delivered nothing for {self.stall_seconds:.1f} s"
        return None

    def _interrupt(self) -> None:
        self._failed.set()


# --- files --------------------------------------------------------------------------------------


def open_audio_file(path: str | Path) -> soundfile.SoundFile:
    """Open an audio file for reading, or raise CaptureError saying why it cannot be used."""
    try:
        return check_audio_file(path)
    except AudioFileError as error:
        raise CaptureError(str(error)) from None


class FileSource(Source):
    """An audio file, converted to 32 kHz mono and paced in real time or fed as fast as its consumer
    takes it (`realtime=False`, see Source)."""

    def __init__(
        self, path: str | Path, realtime: bool = True, block_seconds: float = 0.05, max_ahead: int | None = None
    ):
        self.path = Path(path)
        with open_audio_file(self.path) as handle:
            input_rate, channels = handle.samplerate, handle.channels
        super().__init__(str(path), max_ahead)
        self.realtime = realtime
        self.block_seconds = block_seconds
        self.stats.input_rate = input_rate
        self.stats.input_channels = channels

    def _run(self) -> None:
        self.stats.state = "running"
        started = time.monotonic()
        try:
            for samples in read_blocks(self.path, self.block_seconds, self.stats):  # 32 kHz mono [n]
                self._wait_for_room(samples.size, started)
                if self._stop.is_set():
                    return
                self._write(samples)
        except AudioFileError as error:
            raise CaptureError(str(error)) from None
        self.stats.state = "ended"

    def _wait_for_room(self, n: int, started: float) -> None:
        if self.realtime:  # the block's samples may be written once their time has come
            due = started + (self.stats.samples + n) / SAMPLE_RATE
            self._stop.wait(max(0.0, due - time.monotonic()))
        else:
            self._follow_consumer(n)


# --- ffmpeg -------------------------------------------------------------------------------------


class FfmpegSource(Source):
    """Anything ffmpeg reads, decoded to 32 kHz mono float32 by an ffmpeg subprocess.

    Finite or live is told apart once, at start, by ffprobe's duration: a local file, or a URL whose
    duration is known (a whole file on a web server), is finite; a URL without one (a radio or camera
    stream) is live. A finite input is paced to real time (ffmpeg's -re) unless `realtime=False`, and ends
    the stream at its end, or starts again from its beginning with `loop` (counted in `stats.loops`). A
    live input is read as it comes and reconnected with backoff whenever ffmpeg exits or fails; each
    reconnect and the audio it missed (`stats.gap_seconds`, wall time without samples) are counted. With
    `realtime=False` the source follows its consumer (see Source): ffmpeg waits while its pipe is not read.
    """

    def __init__(
        self,
        url: str,
        realtime: bool = True,
        block_seconds: float = 0.05,
        io_timeout_seconds: float = 5.0,
        backoff: Backoff | None = None,
        ffmpeg: str = "ffmpeg",
        max_ahead: int | None = None,
        loop: bool = False,
        ffprobe: str = "ffprobe",
    ):
        if not url:
            raise CaptureError("ffmpeg: source needs a URL or path, e.g. ffmpeg:http://host/stream")
        super().__init__(f"ffmpeg:{url}", max_ahead)
        self.url = url
        self.local = Path(url).is_file()
        self.finite = self.local  # settled by the duration probe when the source starts
        self.loop = loop
        self.realtime = realtime
        self.block_bytes = int(SAMPLE_RATE * block_seconds) * 4
        self.io_timeout_seconds = io_timeout_seconds
        self.backoff = backoff or Backoff()
        self.ffmpeg = ffmpeg
        self.ffprobe = ffprobe
        self.stats.input_rate = SAMPLE_RATE  # ffmpeg resamples; the native rate is not known here
        self.stats.input_channels = 1
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def command(self) -> list[str]:
        command = [self.ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error"]
        if self.realtime and self.finite:
            command += ["-re"]
        if not self.local:
            command += ["-rw_timeout", str(int(self.io_timeout_seconds * 1e6))]
        return command + ["-i", self.url, "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "f32le", "-"]

    def probe_duration(self) -> float | None:
        """The input's duration in seconds by ffprobe; None for a live stream, or when it cannot tell."""
        command = [self.ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "default=nw=1:nk=1"]
        if not self.local:
            command += ["-rw_timeout", str(int(self.io_timeout_seconds * 1e6))]
        try:
            probe = subprocess.run(
                command + [self.url], capture_output=True, text=True, timeout=3 * self.io_timeout_seconds
            )
            duration = float(probe.stdout.strip().splitlines()[0])
        except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
            return None  # no ffprobe, no answer or "N/A": treat it as live, which reconnects
        return duration if np.isfinite(duration) and duration > 0 else None

    def _run(self) -> None:
        conditioner = Conditioner(SAMPLE_RATE, self.stats)
        self.finite = self.local or self.probe_duration() is not None
        failures = 0
        while not self._stop.is_set():
            received, why = self._decode_once(conditioner, reconnecting=failures > 0)
            if self._stop.is_set():
                return
            if self.finite:  # a whole file is not a stream that comes back: its end or error is final
                if why is not None:
                    raise CaptureError(why)
                if self.loop:
                    self.stats.loops += 1
                    continue
                self.stats.state = "ended"
                return
            if received:
                self.backoff.reset()
            failures += 1
            self.stats.state = "reconnecting"
            self._report(why or "stream ended; reconnecting")
            self._stop.wait(self.backoff.next())

    def _decode_once(self, conditioner: Conditioner, reconnecting: bool) -> tuple[int, str | None]:
        """Run ffmpeg until it exits: (bytes received, None on a clean end or the error)."""
        with tempfile.TemporaryFile() as errors:
            try:
                process = subprocess.Popen(
                    self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors
                )
            except FileNotFoundError as error:
                raise CaptureError(f"cannot run {self.ffmpeg!r}: install ffmpeg") from error
            with self._lock:
                self._process = process
            if self._stop.is_set():
                process.kill()
            received = 0
            pending = b""
            while True:
                chunk = process.stdout.read1(self.block_bytes)
                if not chunk:
                    break
                if received == 0:
                    self.stats.state = "running"
                    if reconnecting:
                        self._resumed()
                received += len(chunk)
                pending += chunk
                usable = len(pending) - len(pending) % 4
                if not self.realtime:
                    self._follow_consumer(usable // 4)
                self._write(conditioner.process(np.frombuffer(pending[:usable], dtype="<f4")))
                pending = pending[usable:]
            process.stdout.close()
            code = process.wait()
            with self._lock:
                self._process = None
            if code == 0 and received > 0:
                return received, None
            errors.seek(0)
            tail = errors.read()[-400:].decode(errors="replace").strip()
            return received, f"ffmpeg exited with code {code}" + (f": {tail}" if tail else " (no audio)")

    def _interrupt(self) -> None:
        with self._lock:
            if self._process is not None:
                self._process.kill()


# --- command-line SOURCE ------------------------------------------------------------------------


def open_source(spec: str | None, fast: bool = False, max_ahead: int | None = None, loop: bool = False) -> Source:
    """A source from a command-line SOURCE: None or `mic`, `mic:NAME` (index or name part), `ffmpeg:URL`,
    or a path to an audio file. `fast` feeds files as fast as the consumer allows (see Source); `loop`
    starts a finite ffmpeg input again at its end."""
    if spec is None or spec == "mic":
        return MicrophoneSource(None)
    if spec.startswith("mic:"):
        return MicrophoneSource(spec[len("mic:") :])
    if spec.startswith("ffmpeg:"):
        return FfmpegSource(spec[len("ffmpeg:") :], realtime=not fast, max_ahead=max_ahead, loop=loop)
    if not os.path.exists(spec):
        raise CaptureError(f"{spec}: no such file (SOURCE is mic, mic:NAME, ffmpeg:URL or an audio file)")
    if os.path.isdir(spec):
        raise CaptureError(f"{spec}: a folder, not an audio file (detect-dir runs on every file of a folder)")
    return FileSource(spec, realtime=not fast, max_ahead=max_ahead)
