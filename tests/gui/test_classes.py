"""Classes across the panels: one order and one filter for the heatmap, the top-k chart and the lanes;
a fixed colour per class, distinct also for colour-blind readers; open events hatched, ended ones
solid; and the user's choices remembered between runs."""

import itertools

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from htsat_live.gui.colours import PALETTE, class_colour
from htsat_live.gui.live_data import LiveData

# Classes 0..3 = Speech, Dog, Siren, Music. Peaks over the span: Siren 0.9, Music 0.7, Dog 0.5, Speech 0.3;
# the newest clipwise scores rank them otherwise (Speech first), as they do when a sound has just begun.
HIGH = {2: (2.0, 6.0, 0.9), 3: (8.0, 12.0, 0.7), 1: (14.0, 18.0, 0.5), 0: (20.0, 24.0, 0.3)}
CLIPWISE = np.array([0.8, 0.2, 0.1, 0.4])
ORDERS = {
    "score": ["Siren", "Music", "Dog", "Speech"],
    "alphabetical": ["Dog", "Music", "Siren", "Speech"],
    "config": ["Speech", "Dog", "Siren", "Music"],
}


def scene(live, messages, feed) -> None:
    feed(live, 30, high=HIGH)
    last = messages.timeline(30)[-1]
    last["frames"], last["clipwise"] = [], CLIPWISE.tolist()  # only the newest clipwise scores change
    assert live.apply("scores", last)
    for event_id, (c, (t0, t1, _)) in enumerate(HIGH.items()):
        live.apply("event", messages.event(event_id, "end", messages.labels[c], t0, t1, 0.9))


def choose_order(w, order: str) -> None:
    w.order_box.setCurrentIndex(w.order_box.findData(order))


def rows_top_down(plot) -> list[str]:
    """The names written beside a plot's rows, top row first."""
    return [name for _, name in sorted(plot.row_axis._tickLevels[0], key=lambda tick: -tick[0])]


@pytest.mark.parametrize("order", list(ORDERS))
def test_one_order_for_the_heatmap_the_top_k_chart_and_the_lanes(window, grab, messages, feed, order):
    live = LiveData()
    scene(live, messages, feed)
    w = window(live, span_seconds=30, top_n=4)
    choose_order(w, order)
    w.redraw()
    image = grab(w)
    expected = ORDERS[order]
    assert rows_top_down(w.heatmap) == rows_top_down(w.topk) == rows_top_down(w.lanes) == expected
    for row, label in enumerate(expected):  # what is drawn in each row is that class, in its colour
        y = len(expected) - 1 - row + 0.75
        colour = class_colour((messages.labels.index(label),)).rgb()
        assert image.colour(w.topk, CLIPWISE[messages.labels.index(label)] / 2, y).rgb() == colour
        t0, t1, _ = HIGH[messages.labels.index(label)]
        assert image.colour(w.lanes, (t0 + t1) / 2, y - 0.25).rgb() == colour
        # its high scores, brighter than the rest of its row
        assert image.colour(w.heatmap, (t0 + t1) / 2, y).lightness() > image.colour(w.heatmap, 25.5, y).lightness() + 20


def test_one_filter_for_all_three_panels(window, grab, messages, feed):
    live = LiveData()
    scene(live, messages, feed)
    w = window(live, span_seconds=30, top_n=4)
    w.filter_box.setText("dog, MUS")
    w.redraw()
    image = grab(w)
    assert rows_top_down(w.heatmap) == rows_top_down(w.topk) == rows_top_down(w.lanes) == ["Music", "Dog"]
    siren = class_colour((2,)).rgb()  # filtered out: drawn nowhere
    assert not any(c.rgb() == siren for c in image.colours_in(image.rect(w.topk_view)))
    assert not any(c.rgb() == siren for y in (0.5, 1.5) for c in image.row(w.lanes, y, 0.5, 29.5)[1])


def test_class_colours_are_the_same_whatever_order_the_classes_appear_in(window, grab, messages, feed):
    drawn = []
    for labels in (["Dog", "Siren", "Music"], ["Music", "Siren", "Dog"]):
        live = LiveData()
        feed(live, 30)
        for event_id, label in enumerate(labels):
            live.apply("event", messages.event(event_id, "end", label, 5.0 * event_id + 2, 5.0 * event_id + 5, 0.9))
        w = window(live, span_seconds=30)
        choose_order(w, "alphabetical")
        w.redraw()
        image = grab(w)
        drawn.append(
            {
                label: image.colour(w.lanes, 5.0 * i + 3.5, 2 - w.lanes.lanes.index(label) + 0.5).rgb()
                for i, label in enumerate(labels)
            }
        )
    assert drawn[0] == drawn[1]
    assert len(set(drawn[0].values())) == 3


def simulate(colour: str, matrix) -> np.ndarray:
    """How a colour (#RRGGBB) looks with a colour vision deficiency: Machado et al. (2009), severity 1,
    applied in linear RGB; returns sRGB in 0..255."""
    srgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)]) / 255
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    seen = np.clip(np.asarray(matrix) @ linear, 0, 1)
    return 255 * np.where(seen <= 0.0031308, 12.92 * seen, 1.055 * seen ** (1 / 2.4) - 0.055)


# deficiency -> its simulation matrix and the least distance (sRGB 0..255) two class colours keep in it: wide
# for the common red-green deficiencies, which the palette is made for, narrower for the rare tritanopia
DEFICIENCIES = {
    "protanopia": (
        [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]],
        40,
    ),
    "deuteranopia": (
        [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]],
        40,
    ),
    "tritanopia": (
        [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]],
        25,
    ),
}


@pytest.mark.parametrize("deficiency", list(DEFICIENCIES))
def test_the_class_colours_stay_distinct_for_colour_blind_readers(deficiency):
    matrix, least = DEFICIENCIES[deficiency]
    seen = [simulate(colour, matrix) for colour in PALETTE]
    assert min(np.linalg.norm(a - b) for a, b in itertools.combinations(seen, 2)) > least
    assert len({class_colour((i,)).rgb() for i in range(len(PALETTE))}) == len(PALETTE)


def test_provisional_events_are_hatched_and_confirmed_events_solid(window, grab, messages, feed):
    live = LiveData()
    feed(live, 30)
    live.apply("event", messages.event(1, "end", "Dog", 2.0, 8.0, 0.9))  # ended: confirmed
    live.apply("event", messages.event(2, "start", "Siren", 10.0, 18.0, 0.8))  # just started: provisional
    live.apply("event", messages.event(3, "update", "Music", 20.0, 27.0, 0.9, confirmed=True))  # open, confirmed
    w = window(live, span_seconds=30)
    choose_order(w, "config")
    w.redraw()
    image = grab(w)
    shares = {}
    for label, (t0, t1), lane in (("Dog", (2.0, 8.0), 2), ("Siren", (10.0, 18.0), 1), ("Music", (20.0, 27.0), 0)):
        colour = class_colour((messages.labels.index(label),)).rgb()
        inside = [
            c.rgb()
            for y in (lane + 0.35, lane + 0.5, lane + 0.65)
            for c in image.row(w.lanes, y, t0 + 0.3, t1 - 0.3)[1]
        ]
        shares[label] = inside.count(colour) / len(inside)
    assert shares["Dog"] == 1.0 and shares["Music"] == 1.0  # solid
    assert 0.05 < shares["Siren"] < 0.5  # lines of its colour over the background
    tips = {bar.toolTip().split(":")[0]: bar.toolTip() for bar, _, _ in w.lanes._bars.values()}
    assert "(open, provisional)" in tips["Siren"] and "(ended)" in tips["Dog"] and "(open)" in tips["Music"]


def test_the_window_remembers_the_users_choices_for_the_next_run(window, grab, messages, feed, tmp_path):
    settings = QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    live = LiveData()
    scene(live, messages, feed)
    first = window(live, size=(1500, 850), settings=settings)
    choose_order(first, "alphabetical")
    first.span_box.setCurrentIndex(first.span_box.findData(20))
    first.top_n_box.setValue(3)
    first.filter_box.setText("i")  # Siren, Music
    first.resize(1366, 768)
    first.close()
    again = window(live, size=None, settings=QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat))
    again.redraw()
    grab(again)
    assert (again.width(), again.height()) == (1366, 768)
    assert again.choices().order == "alphabetical" and again.span_seconds == 20 and again.top_n_box.value() == 3
    assert again.filter_box.text() == "i"
    assert rows_top_down(again.heatmap) == ["Music", "Siren"]
    left, right = again.heatmap.viewRange()[0]
    assert right - left == pytest.approx(20.0)
