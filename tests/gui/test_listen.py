"""Listening to an event: in local mode a click on its bar plays its stretch of audio, from the ring
buffer or, once the ring has moved on, from its clip file; in remote mode the action is shown
unavailable, with the reason. The sound goes through sounddevice into a PulseAudio null sink and is
recorded back from the sink's monitor."""

import numpy as np
import soundfile
from PySide6.QtCore import QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QToolBar

from htsat_live.gui.live_data import LiveData
from htsat_live.gui.local_source import LocalSource
from htsat_live.gui.receiver import Receiver
from htsat_live.gui.window import REMOTE_LISTEN, LiveWindow
from htsat_live.model import SAMPLE_RATE, load_model
from htsat_live.stream.config import load_config, with_overrides
from htsat_live.stream.output import Listener
from htsat_live.stream.outputs.sinks import Sinks
from htsat_live.stream.pipeline import Pipeline

TONE_HZ = 1500.0


def tone_file(path, seconds: float, noise: float = 0.0) -> np.ndarray:
    """A tone of TONE_HZ, with seeded noise of amplitude `noise` (which makes every stretch unique)."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = 0.3 * np.sin(2 * np.pi * TONE_HZ * t) + noise * np.random.default_rng(0).standard_normal(len(t))
    soundfile.write(path, wave.astype(np.float32), SAMPLE_RATE, subtype="FLOAT")
    return wave.astype(np.float32)


def local_window(qapp, checkpoint, audio, wait_until, **settings) -> tuple[LiveWindow, Receiver]:
    """The window of a local pipeline that played `audio` to its end; threshold 0 makes class_3 one
    event over the whole file."""
    config = with_overrides(
        load_config(None),
        {
            "publish.enabled": False,
            "source.fast": True,
            "windows.hop": 1.0,
            "events.threshold": 0.0,
            "events.allow": ["class_3"],
            **settings,
        },
    )
    sinks = Sinks.from_config(config.sinks)  # clips only when sinks.clips_dir is set
    source = LocalSource(sinks=sinks)
    source.attach(Pipeline(config, load_model(checkpoint), [str(audio)], outputs=[sinks, Listener(source.listen)]))
    live = LiveData()
    receiver = Receiver(source, live)
    window = LiveWindow(
        live, "local", set_threshold=source.set_threshold, event_audio=source.event_audio, span_seconds=30
    )
    window.resize(1200, 800)
    receiver.start()
    window.show()
    wait_until(lambda: live.finished, 60.0, "the event to end with the file", between=qapp.processEvents)
    wait_until(lambda: not window.display_now()[1], 10.0, "the view to settle", between=qapp.processEvents)
    window.redraw(force=True)
    qapp.processEvents()
    return window, receiver


def dominant_frequency(sound: np.ndarray) -> float:
    """The median of the strongest frequency of each loud 50-ms block (a block that a glitch in
    playback or recording broke up does not move the median)."""
    block = SAMPLE_RATE // 20
    found = []
    for start in range(0, len(sound) - block, block):
        piece = sound[start : start + block]
        if np.sqrt(np.mean(piece**2)) > 0.1:
            spectrum = np.abs(np.fft.rfft(piece * np.hanning(block), n=SAMPLE_RATE))  # 1-Hz bins
            found.append(float(np.argmax(spectrum)))
    return float(np.median(found)) if found else 0.0


def click(window, x: float, y: float) -> None:
    """Click data point (x, y) of the event lanes, as a user does."""
    view = window.plots
    position = view.mapFromScene(window.lanes.vb.mapViewToScene(QPointF(x, y)))
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=position)


def test_clicking_an_event_bar_plays_its_audio(virtual_mic, qapp, tiny_checkpoint, tmp_path, wait_until):
    import sounddevice

    sounddevice._terminate()  # PortAudio lists the devices once: look again, now that the sound server runs
    sounddevice._initialize()
    tone_file(tmp_path / "tone.wav", 4.0)
    window, receiver = local_window(qapp, tiny_checkpoint, tmp_path / "tone.wav", wait_until)
    heard = []
    microphone = sounddevice.InputStream(
        samplerate=SAMPLE_RATE, channels=1, dtype="float32", callback=lambda block, *_: heard.append(block[:, 0].copy())
    )
    try:
        microphone.start()
        (event,) = [e for e in window.live.events() if e.label == "class_3"]
        click(window, (event.onset + event.offset) / 2, 0.5)
        assert window.lanes.selected == event
        assert window.status_bar.notice.text().startswith("playing class_3, 0.0-4.0 s (4.0 s of audio)")

        def loud() -> np.ndarray:
            sound = np.concatenate(heard) if heard else np.zeros(0, np.float32)
            return sound[np.abs(sound) > 0.05]

        wait_until(
            lambda: len(loud()) > SAMPLE_RATE,
            15.0,
            "the event's sound on the monitor of the sink",
            between=qapp.processEvents,
        )
        assert abs(dominant_frequency(np.concatenate(heard)) - TONE_HZ) < 10
    finally:
        microphone.close()
        receiver.stop()
        window.close()


def test_an_event_that_left_the_ring_buffer_plays_from_its_clip(qapp, tiny_checkpoint, tmp_path, wait_until):
    wave = tone_file(tmp_path / "tone.wav", 26.0, noise=0.1)
    window, receiver = local_window(
        qapp,
        tiny_checkpoint,
        tmp_path / "tone.wav",
        wait_until,
        **{"source.ring_seconds": 20.0, "sinks.clips_dir": str(tmp_path / "clips"), "sinks.post_roll": 0.0},
    )
    try:
        (event,) = [e for e in window.live.events() if e.label == "class_3"]
        assert event.onset == 0.0  # older than the ring's 20 s
        audio = window.event_audio(window.live.stream, event)
        (clip,) = (tmp_path / "clips").glob("htsat-*.wav")
        assert len(audio) == len(soundfile.read(clip)[0]) >= 19 * SAMPLE_RATE
        # the file's audio from where the ring began when the event ended, as 16-bit PCM
        start = int(np.argmax(np.correlate(wave, audio[: SAMPLE_RATE // 100], mode="valid")))
        assert np.max(np.abs(audio - wave[start : start + len(audio)])) < 1e-3
        assert 5 * SAMPLE_RATE <= start < 7 * SAMPLE_RATE
    finally:
        receiver.stop()
        window.close()


def test_without_clips_the_status_bar_says_why_an_old_event_cannot_be_played(
    qapp, tiny_checkpoint, tmp_path, wait_until
):
    tone_file(tmp_path / "tone.wav", 26.0)
    window, receiver = local_window(
        qapp, tiny_checkpoint, tmp_path / "tone.wav", wait_until, **{"source.ring_seconds": 20.0}
    )
    try:
        (event,) = [e for e in window.live.events() if e.label == "class_3"]
        window.lanes.select(event)
        window.listen()
        assert window.status_bar.notice.text() == (
            "cannot play class_3 at 0.0 s: the last 20 s of audio are held and no clips are recorded "
            "(set sinks.clips_dir)"
        )
    finally:
        receiver.stop()
        window.close()


def test_in_remote_mode_listening_is_shown_unavailable_with_the_reason(window, grab, messages, feed):
    live = LiveData()
    feed(live, 30)
    live.apply("event", messages.event(1, "end", "Dog", 10.0, 15.0, 0.9))
    local = window(live, span_seconds=30, event_audio=lambda stream, event: np.zeros(10, np.float32))
    remote = window(live, span_seconds=30)
    darkest = {}
    for name, w in (("local", local), ("remote", remote)):
        w.redraw()
        image = grab(w)
        button = w.findChild(QToolBar).widgetForAction(w.listen_action)
        darkest[name] = min(c.lightness() for c in image.colours_in(image.rect(button)))
    assert darkest["local"] < 60 and darkest["remote"] > 90  # the remote "Listen" is greyed out
    assert not remote.listen_action.isEnabled() and REMOTE_LISTEN in remote.listen_action.toolTip()
    ((bar, _, event),) = remote.lanes._bars.values()
    assert REMOTE_LISTEN in bar.toolTip()
    click(remote, 12.5, 0.5)
    assert remote.lanes.selected == event and remote.status_bar.notice.text() == REMOTE_LISTEN


def test_playback_honours_the_privacy_filter(qapp, tiny_checkpoint, tmp_path, wait_until):
    tone_file(tmp_path / "tone.wav", 4.0)
    for mode in ("drop", "mute"):
        window, receiver = local_window(
            qapp,
            tiny_checkpoint,
            tmp_path / "tone.wav",
            wait_until,
            **{"sinks.privacy": mode, "sinks.privacy_targets": ["class_3"]},
        )
        try:
            (event,) = [e for e in window.live.events() if e.label == "class_3"]
            window.lanes.select(event)
            window.listen()
            if mode == "drop":  # the event is of a privacy target: none of its audio may be played
                assert window.status_bar.notice.text().endswith("the privacy filter withholds it (it overlaps class_3)")
            else:
                audio = window.event_audio(window.live.stream, event)
                assert len(audio) == 4 * SAMPLE_RATE and not np.any(audio)  # muted where the event is
        finally:
            receiver.stop()
            window.close()
