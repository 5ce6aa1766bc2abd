"""The status bar shows the windows the level gate kept from the model, once there are any."""

from htsat_live.gui.live_data import LiveData


def test_gated_windows_join_the_counters_once_there_are_any(window, messages):
    live = LiveData()
    counters = {"windows": 9, "skipped_windows": 1, "gated_windows": 0, "failed_windows": 0, "input_overflows": 0}
    live.apply("status", messages.status(counters=counters))
    w = window(live)
    w.redraw()
    assert w.status_bar.counters.text() == "drops 0 / skips 1 / lost msgs 0"
    live.apply("status", messages.status(counters={**counters, "gated_windows": 40}))
    w.redraw()
    assert w.status_bar.counters.text() == "drops 0 / skips 1 / lost msgs 0 / gated 40"
    assert "gated_windows 40" in w.status_bar.counters.toolTip()
