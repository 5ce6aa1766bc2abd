import http.server
import io
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile

from htsat_live.model import SAMPLE_RATE
from htsat_live.stream.capture import (
    Backoff,
    CaptureError,
    FfmpegSource,
    FileSource,
    MicrophoneSource,
    open_source,
)
from htsat_live.stream.ring import RingBuffer


def tone(seconds: float, rate: int, frequency: float = 1000.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def dominant_frequency(samples: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.argmax(spectrum) * rate / samples.size)


def run_to_end(source, seconds_capacity: float = 30.0, timeout: float = 20.0) -> RingBuffer:
    ring = RingBuffer(int(SAMPLE_RATE * seconds_capacity), SAMPLE_RATE)
    source.start(ring)
    ring.wait_for(1 << 62, timeout=timeout)
    assert ring.closed, "the source did not finish"
    source.stop()
    return ring


def test_file_source_mixes_to_mono_and_resamples_any_rate(tmp_path):
    left = tone(2.0, 44100, 1000.0)
    stereo = np.stack([left, np.zeros_like(left)], axis=1)  # [frames, 2]; the mono mix halves it
    soundfile.write(tmp_path / "stereo44k.wav", stereo, 44100)
    source = FileSource(tmp_path / "stereo44k.wav", realtime=False)
    ring = run_to_end(source)
    out = ring.read(0, ring.end)
    assert abs(ring.end - 2 * SAMPLE_RATE) <= 2
    assert dominant_frequency(out[8000:56000]) == pytest.approx(1000.0, abs=2.0)
    assert np.sqrt(np.mean(out[8000:56000] ** 2)) == pytest.approx(0.25 / np.sqrt(2), rel=0.02)
    assert (source.stats.state, source.stats.input_rate, source.stats.input_channels) == ("ended", 44100, 2)


def test_file_source_reads_six_channel_8khz_files(tmp_path):
    channels = np.stack([tone(1.0, 8000, 440.0)] * 6, axis=1)
    soundfile.write(tmp_path / "six.flac", channels, 8000)
    ring = run_to_end(FileSource(tmp_path / "six.flac", realtime=False))
    assert abs(ring.end - SAMPLE_RATE) <= 2
    assert dominant_frequency(ring.read(4000, 28000)) == pytest.approx(440.0, abs=2.0)


def test_file_source_paced_in_real_time_takes_the_file_duration(tmp_path):
    soundfile.write(tmp_path / "half.wav", tone(0.6, SAMPLE_RATE), SAMPLE_RATE)
    started = time.monotonic()
    ring = run_to_end(FileSource(tmp_path / "half.wav", realtime=True))
    assert time.monotonic() - started >= 0.55
    assert ring.end == int(0.6 * SAMPLE_RATE)


def test_nonfinite_samples_are_zeroed_and_counted(tmp_path):
    samples = tone(1.0, SAMPLE_RATE)
    samples[[10, 500, 31999]] = [np.nan, np.inf, -np.inf]
    soundfile.write(tmp_path / "nan.wav", samples, SAMPLE_RATE, subtype="FLOAT")
    source = FileSource(tmp_path / "nan.wav", realtime=False)
    ring = run_to_end(source)
    out = ring.read(0, ring.end)
    assert source.stats.nonfinite_samples == 3
    assert np.isfinite(out).all()
    assert out[[10, 500, 31999]].tolist() == [0.0, 0.0, 0.0]


def test_clipped_input_passes_through_and_is_counted(tmp_path):
    samples = np.clip(tone(1.0, SAMPLE_RATE, amplitude=3.0), -1.0, 1.0)
    soundfile.write(tmp_path / "clipped.wav", samples, SAMPLE_RATE, subtype="FLOAT")
    source = FileSource(tmp_path / "clipped.wav", realtime=False)
    ring = run_to_end(source)
    assert source.stats.clipped_samples == int(np.count_nonzero(np.abs(samples) >= 0.999))
    np.testing.assert_array_equal(ring.read(0, ring.end), samples)


def test_silence_is_captured_as_zeros(tmp_path):
    soundfile.write(tmp_path / "silence.wav", np.zeros(16000, np.int16), 16000)
    ring = run_to_end(FileSource(tmp_path / "silence.wav", realtime=False))
    assert abs(ring.end - SAMPLE_RATE) <= 2
    assert np.abs(ring.read(0, ring.end)).max() < 1e-6


def test_empty_corrupt_and_missing_files_are_clear_errors(tmp_path):
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, np.float32), SAMPLE_RATE)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    with pytest.raises(CaptureError, match="holds no audio"):
        FileSource(tmp_path / "empty.wav")
    with pytest.raises(CaptureError, match="not a readable audio file"):
        FileSource(tmp_path / "corrupt.wav")
    with pytest.raises(CaptureError, match="no such file"):
        open_source(str(tmp_path / "missing.wav"))


def test_fast_file_source_stays_within_reach_of_its_consumer(tmp_path, wait_until):
    soundfile.write(tmp_path / "long.wav", tone(5.0, SAMPLE_RATE), SAMPLE_RATE)
    source = FileSource(tmp_path / "long.wav", realtime=False, max_ahead=SAMPLE_RATE)
    ring = RingBuffer(2 * SAMPLE_RATE, SAMPLE_RATE)
    ring.consumer_position = 0
    source.start(ring)
    wait_until(lambda: ring.end >= SAMPLE_RATE // 2, 10.0, "the source to read ahead")
    time.sleep(0.3)  # time to read far past its limit, were it not held back
    assert SAMPLE_RATE // 2 <= ring.end <= SAMPLE_RATE  # held back: the consumer took nothing
    reader = ring.reader(start=0)
    while not (ring.closed and reader.position >= ring.end):
        ring.consumer_position = reader.position
        reader.read()
        ring.wait_for(reader.position + 1, timeout=0.05)
    source.stop()
    assert reader.overruns == 0
    assert ring.end == 5 * SAMPLE_RATE


def test_ffmpeg_source_decodes_a_file_to_32k_mono(tmp_path):
    stereo = np.stack([tone(1.5, 48000, 2000.0), tone(1.5, 48000, 2000.0)], axis=1)
    soundfile.write(tmp_path / "stereo48k.flac", stereo, 48000)
    source = FfmpegSource(str(tmp_path / "stereo48k.flac"), realtime=False)
    ring = run_to_end(source)
    assert abs(ring.end - int(1.5 * SAMPLE_RATE)) <= 64
    assert dominant_frequency(ring.read(8000, 40000)) == pytest.approx(2000.0, abs=2.0)
    assert source.stats.state == "ended"


def test_ffmpeg_source_reports_a_corrupt_file(tmp_path):
    (tmp_path / "corrupt.mp3").write_bytes(bytes(range(256)) * 8)
    source = FfmpegSource(str(tmp_path / "corrupt.mp3"), realtime=False)
    run_to_end(source)
    assert source.stats.state == "error"
    assert "ffmpeg exited" in source.stats.last_error


def streaming_wav(wave: np.ndarray, rate: int) -> bytes:
    """A WAV as a live stream sends it: header sizes 0xFFFFFFFF ("until the stream ends"), so no duration."""
    buffer = io.BytesIO()
    soundfile.write(buffer, wave, rate, format="WAV", subtype="PCM_16")
    payload = bytearray(buffer.getvalue())
    payload[4:8] = struct.pack("<I", 0xFFFFFFFF)
    data = payload.find(b"data")
    payload[data + 4 : data + 8] = struct.pack("<I", 0xFFFFFFFF)
    return bytes(payload)


class FlakyStreamServer:
    """A local HTTP server of a live WAV stream (no length, no duration): each connection gets one second
    of audio and is then closed (the stream drops); connections 2 and 3 are refused with 503 (the server is
    down; the first connection is the source's duration probe). With `finite`, it serves a whole 1-s file
    (Content-Length, a duration) instead, on every request."""

    def __init__(self, finite: bool = False):
        wave = tone(1.0, 22050, 1000.0)
        buffer = io.BytesIO()
        soundfile.write(buffer, wave, 22050, format="WAV", subtype="PCM_16")
        payload = buffer.getvalue() if finite else streaming_wav(wave, 22050)
        self.requests = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                if server.requests in (2, 3) and not finite:
                    self.send_error(503, "down for a moment")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "audio/wav")
                if finite:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/live.wav"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_ffmpeg_source_reconnects_when_a_network_stream_drops_and_returns(wait_until):
    with FlakyStreamServer() as server:
        source = FfmpegSource(server.url, backoff=Backoff(initial=0.05, maximum=0.2))
        ring = RingBuffer(30 * SAMPLE_RATE, SAMPLE_RATE)
        source.start(ring)
        try:
            wait_until(lambda: source.stats.samples >= int(1.9 * SAMPLE_RATE), 30.0, "audio after the drop")
            assert not ring.closed  # a live stream does not end when its connection drops
        finally:
            source.stop()
    assert server.requests >= 4
    assert source.stats.reconnects >= 1
    assert source.stats.errors >= 3  # the drop and two refused connections
    assert source.stats.gap_seconds > 0.0 and source.stats.loops == 0


def test_ffmpeg_source_ends_a_finite_network_file_like_a_file(wait_until):
    with FlakyStreamServer(finite=True) as server:
        source = FfmpegSource(server.url, realtime=False, backoff=Backoff(initial=0.05, maximum=0.2))
        ring = RingBuffer(30 * SAMPLE_RATE, SAMPLE_RATE)
        source.start(ring)
        try:
            wait_until(lambda: source.stats.state == "ended", 30.0, "the end of the file")
        finally:
            source.stop()
    assert source.finite and server.requests == 2  # the duration probe and one read
    assert source.stats.reconnects == 0 and source.stats.errors == 0
    assert abs(source.stats.samples - SAMPLE_RATE) <= 64  # one second, once
    assert ring.closed


def test_ffmpeg_source_loops_a_finite_input_only_when_asked(wait_until):
    with FlakyStreamServer(finite=True) as server:
        source = FfmpegSource(server.url, realtime=False, loop=True)
        ring = RingBuffer(30 * SAMPLE_RATE, SAMPLE_RATE)
        source.start(ring)
        try:
            wait_until(lambda: source.stats.loops >= 2, 30.0, "two loops")
        finally:
            source.stop()
    assert source.stats.samples >= 2 * SAMPLE_RATE - 64 and source.stats.reconnects == 0


def test_ffmpeg_paces_finite_inputs_to_real_time_and_reads_live_ones_as_they_come(tmp_path):
    path = tmp_path / "one.wav"
    soundfile.write(path, tone(1.0, 22050, 1000.0), 22050)
    assert "-re" in FfmpegSource(str(path)).command()
    assert "-re" not in FfmpegSource(str(path), realtime=False).command()
    live = FfmpegSource("http://127.0.0.1:9/radio")
    assert not live.finite and "-re" not in live.command() and "-rw_timeout" in live.command()


def test_unknown_input_device_is_a_clear_error(virtual_mic):
    reinitialise_portaudio()
    with pytest.raises(CaptureError, match="no-such-microphone"):
        open_source("mic:no-such-microphone")


def reinitialise_portaudio() -> None:
    # PortAudio lists the devices when it initialises; the PulseAudio daemon of the fixture started
    # after sounddevice was imported, so it must look again.
    import sounddevice

    sounddevice._terminate()
    sounddevice._initialize()


def test_microphone_any_native_rate_and_channels_becomes_32k_mono(virtual_mic, tmp_path, wait_until):
    reinitialise_portaudio()
    soundfile.write(tmp_path / "tone22k.wav", tone(6.0, 22050, 1000.0), 22050)
    source = MicrophoneSource(None, samplerate=48000, channels=2)
    ring = RingBuffer(20 * SAMPLE_RATE, SAMPLE_RATE)
    source.start(ring)
    player = virtual_mic.play(tmp_path / "tone22k.wav")
    try:
        wait_until(lambda: source.stats.samples >= SAMPLE_RATE, 15.0, "microphone audio")
        wait_until(lambda: np.sqrt(np.mean(ring.read(ring.end - 3200, ring.end) ** 2)) > 0.05, 15.0, "the played tone")
        first_end, first_time = ring.end, time.monotonic()
        time.sleep(1.0)  # the rate is measured over this second
        rate = (ring.end - first_end) / (time.monotonic() - first_time)
        recent = ring.read(ring.end - 16000, ring.end)
    finally:
        player.wait(timeout=30)
        source.stop()
    assert rate == pytest.approx(SAMPLE_RATE, rel=0.2)
    assert dominant_frequency(recent) == pytest.approx(1000.0, abs=4.0)
    assert np.sqrt(np.mean(recent**2)) > 0.05
    assert (source.stats.input_rate, source.stats.input_channels) == (48000, 2)
    assert abs(ring.wall_time(ring.end - 1) - time.time()) < 3.0


def test_microphone_that_disappears_is_reported_and_reopened(virtual_mic, wait_until):
    reinitialise_portaudio()
    source = MicrophoneSource(None, stall_seconds=2.0, backoff=Backoff(initial=0.1, maximum=0.5))
    ring = RingBuffer(20 * SAMPLE_RATE, SAMPLE_RATE)
    source.start(ring)
    try:
        wait_until(lambda: source.stats.samples > 0, 15.0, "microphone audio")
        virtual_mic.kill()  # the device errors: its server is gone
        wait_until(lambda: source.stats.errors >= 1, 10.0, "the failure to be reported")
        assert source.stats.state == "reconnecting"
        assert "input 'default'" in source.stats.last_error
        virtual_mic.start()
        before = source.stats.samples
        wait_until(
            lambda: source.stats.reconnects >= 1 and source.stats.samples > before + 3200, 30.0, "audio after reopening"
        )
        assert source.stats.state == "running"
        assert not ring.closed
    finally:
        source.stop()
    assert source.stats.state == "stopped"


def test_a_folder_as_source_is_called_a_folder_not_missing(tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    with pytest.raises(CaptureError, match=r"recordings: a folder, not an audio file \(detect-dir runs"):
        open_source(str(folder))
    result = subprocess.run(
        [sys.executable, "-m", "htsat_live.cli", "detect", str(folder), "--set", "publish.enabled=false"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "no such" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"htsat-live detect: {folder}: a folder, not an audio file (detect-dir runs on every file of a folder)"
    ]
