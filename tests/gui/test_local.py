"""Local mode end to end: a tone file through the real pipeline (tiny model) in this process, its
messages through LocalSource and the receiver into the window, checked from the window's pixels."""

import numpy as np
import soundfile

from htsat_live.gui.colours import class_colour
from htsat_live.gui.live_data import LiveData
from htsat_live.gui.local_source import LocalSource
from htsat_live.gui.receiver import Receiver
from htsat_live.gui.window import LiveWindow
from htsat_live.model import SAMPLE_RATE, load_model
from htsat_live.stream.config import load_config, with_overrides
from htsat_live.stream.output import Listener
from htsat_live.stream.pipeline import Pipeline

SECONDS = 12


def test_a_tone_file_shows_its_row_its_event_and_the_counters(qapp, grab, tiny_checkpoint, tmp_path, wait_until):
    t = np.arange(SECONDS * SAMPLE_RATE) / SAMPLE_RATE
    path = tmp_path / "tone.wav"
    wave = (0.3 * np.sin(2 * np.pi * 1500 * t)).astype(np.float32)
    soundfile.write(path, wave, SAMPLE_RATE, subtype="FLOAT")
    model = load_model(tiny_checkpoint)
    # threshold 0 makes class_3 active in every frame: one known event over the whole file
    config = with_overrides(
        load_config(None),
        {
            "publish.enabled": False,
            "publish.top_k": 0,
            "source.fast": True,
            "windows.hop": 1.0,
            "events.threshold": 0.0,
            "events.allow": ["class_3"],
        },
    )
    source = LocalSource()
    source.attach(Pipeline(config, model, [str(path)], outputs=[Listener(source.listen)]))
    live = LiveData()
    receiver = Receiver(source, live)
    window = LiveWindow(live, "local", span_seconds=20)
    window.resize(1200, 800)
    receiver.connection_changed.connect(window.status_bar.show_connection)
    receiver.start()
    window.show()
    try:
        wait_until(lambda: live.finished, 60.0, "the event to end with the file", between=qapp.processEvents)
        receiver.poll()
        # the view scrolls one hop behind the data, then settles
        wait_until(lambda: not window.display_now()[1], 10.0, "the view to settle", between=qapp.processEvents)
        window.redraw(force=True)
        image = grab(window)
        assert window.status_bar.connection.text() == "local pipeline: source ended"  # the file played to its end
        assert window.status_bar.counters.text() == "drops 0 / skips 0 / lost msgs 0"
        assert window.status_bar.source.text().startswith(str(path))

        tone_bin = int(np.argmax(model.logmel(wave[:SAMPLE_RATE])[0].mean(axis=0)))
        x = live.now - 6.0
        tone = sum(image.colour(window.spectrogram, x, tone_bin + 0.5).getRgb()[:3])
        assert tone > sum(image.colour(window.spectrogram, x, tone_bin - 6.5).getRgb()[:3]) + 100
        assert tone > sum(image.colour(window.spectrogram, x, tone_bin + 6.5).getRgb()[:3]) + 100

        assert window.lanes.lanes == ["class_3"]
        event = live.finished[0]
        assert event["onset"] == 0.0 and abs(event["offset"] - SECONDS) < 0.05
        left, row = image.row(window.lanes, 0.5, live.now - 20.0, live.now)
        coloured = [left + i for i, c in enumerate(row) if c.rgb() == class_colour((3,)).rgb()]
        assert abs(coloured[0] - image.point(window.lanes, 0.0, 0.5)[0]) <= 2
        assert abs(coloured[-1] - image.point(window.lanes, event["offset"], 0.5)[0]) <= 2
    finally:
        receiver.stop()
        window.close()
