"""The status bar and the threshold box as a user sees them, checked from the window's pixels."""

from PySide6.QtCore import QRect

from htsat_live.gui.live_data import LiveData


def reddish(colour) -> bool:
    return colour.red() > 150 and colour.green() < 110 and colour.blue() < 110


def test_a_source_that_ended_looks_different_from_a_lost_connection(window, grab):
    w = window(LiveData())
    label = w.status_bar.connection
    w.status_bar.show_connection("tcp://127.0.0.1:5556: source ended", "ended")
    ended = grab(w)
    w.status_bar.show_connection("tcp://127.0.0.1:5556: no data, reconnecting", "lost")
    lost = grab(w)
    assert ended.ink(ended.rect(label)) > 50 and lost.ink(lost.rect(label)) > 50
    assert not any(reddish(c) for c in ended.colours_in(ended.rect(label)))  # an end is no alarm
    assert sum(reddish(c) for c in lost.colours_in(lost.rect(label))) > 50
    assert any(c.blue() > c.red() + 60 for c in ended.colours_in(ended.rect(label)))  # but it stands out


def test_the_level_meter_writes_its_figure_beside_the_bar_not_over_it(window, grab, messages):
    live = LiveData()
    live.apply("status", messages.status(level_dbfs=-20.0))
    w = window(live)
    w.redraw()
    bar = w.status_bar
    image = grab(w)
    meter, figure = image.rect(bar.level), image.rect(bar.level_text)
    assert bar.level_text.text() == "-20.0 dBFS" and not bar.level.isTextVisible()
    assert not meter.intersects(figure)
    assert image.ink(figure) > 40  # the figure is drawn, in full view
    filled = [c.rgb() for c in image.colours_in(QRect(meter.left() + 2, meter.center().y(), meter.width() - 4, 1))]
    # -20 dBFS on a -60..0 scale: two thirds of the meter in the highlight colour
    highlight = max(set(filled), key=lambda c: filled[: len(filled) // 2].count(c))
    assert abs(filled.count(highlight) / len(filled) - 2 / 3) < 0.1


def test_long_status_text_does_not_widen_the_window(window, grab, messages):
    live = LiveData()
    w = window(live, size=(1280, 720))
    long_source = "ffmpeg:rtsp://camera.example.org:554/" + "very/long/path/" * 30 + "stream"
    live.apply("status", messages.status(source=long_source, error="could not open " + long_source))
    w.redraw()
    w.status_bar.show_notice("1 events written to /" + "folder/" * 60 + "events.jsonl")
    image = grab(w)
    assert w.width() == 1280 and w.minimumSizeHint().width() <= 1280
    bar = w.status_bar
    assert bar.source.text().startswith(long_source) and long_source in bar.source.toolTip()
    for label in (bar.source, bar.counters, bar.notice, bar.connection):  # every field still in the window
        assert image.rect(label).right() < 1280
    for label in (bar.rate, bar.level_text, bar.backend, bar.hop, bar.latency, bar.counters):  # the long ones yield
        assert label.width() >= label.fontMetrics().horizontalAdvance(label.text()), label.text()
        assert image.ink(image.rect(label)) > 20


def test_saving_a_png_says_where_and_keeps_every_status_field_in_view(window, grab, messages, tmp_path):
    live = LiveData()
    live.apply("status", messages.status())
    w = window(live)
    w.redraw()
    before = grab(w)
    assert w.save_png(tmp_path / "view.png")
    after = grab(w)
    bar = w.status_bar
    assert bar.notice.text() == f"saved {tmp_path / 'view.png'}"
    assert after.ink(after.rect(bar.notice)) > 50
    for label in (bar.source, bar.latency, bar.counters):
        assert label.isVisible() and after.ink(after.rect(label)) == before.ink(before.rect(label)) > 20


def test_exporting_events_says_where_and_keeps_every_status_field_in_view(window, grab, messages, tmp_path):
    live = LiveData()
    live.apply("status", messages.status())
    live.apply("event", messages.event(1, "end", "Dog", 2.0, 3.5, 0.8))
    w = window(live)
    w.redraw()
    before = grab(w)
    assert w.export_events(tmp_path / "events.tsv") == 1
    after = grab(w)
    bar = w.status_bar
    assert bar.notice.text() == f"1 events written to {tmp_path / 'events.tsv'}" and bar.currentMessage() == ""
    for label in (bar.source, bar.latency, bar.counters):
        assert label.isVisible() and after.ink(after.rect(label)) == before.ink(before.rect(label)) > 20


def test_the_threshold_box_looks_read_only_in_remote_mode(window, grab, messages):
    live = LiveData()
    live.apply("status", messages.status(thresholds={"Dog": [0.5, 0.4]}))
    local = window(live, set_threshold=lambda target, value: None)
    remote = window(live)
    plain = {}  # whether the box is drawn as bare text on the toolbar: no frame, no field, no arrows
    for name, w in (("local", local), ("remote", remote)):
        w.redraw()
        image = grab(w)
        box = image.rect(w.threshold_box)
        # the toolbar's background has a vertical gradient: compare each pixel with its row's far right end
        edge = [(x, box.top() + 1) for x in range(box.left() + 1, box.right())] + [
            (box.right() - 1, y) for y in range(box.top() + 1, box.bottom())
        ]
        plain[name] = all(image.image.pixelColor(x, y) == image.image.pixelColor(w.width() - 5, y) for x, y in edge)
        assert image.ink(box) > 20  # the value is written either way
    assert plain == {"local": False, "remote": True}
    assert "read-only" in remote.threshold_box.toolTip() and remote.threshold_box.isReadOnly()
