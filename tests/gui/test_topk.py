"""The top-k chart fits the window at every size from 1280x720 to 1920x1080: its whole title, an axis
from 0 to 1, every bar with its value, and names that take only the room they need."""

import numpy as np
import pytest
from PySide6.QtCore import QRect
from PySide6.QtGui import QFontMetrics

from htsat_live.gui.colours import class_colour
from htsat_live.gui.live_data import LiveData

NAMES = ["Speech", "Dog", "Siren", "Music", "Wind instrument, woodwind instrument", "Bird"]
SCORES = np.array([0.92, 0.61, 0.47, 0.33, 0.18, 0.05])


@pytest.mark.parametrize("size", [(1280, 720), (1600, 900), (1920, 1080)])
def test_the_top_k_chart_fits_with_its_title_axis_and_values(window, grab, messages, size):
    live = LiveData()
    live.apply("scores", messages.scores(0, np.tile(SCORES, (20, 1)), NAMES, 0, clipwise=SCORES))
    w = window(live, size=size)
    w.redraw()
    image = grab(w)
    view = image.rect(w.topk_view)
    topk = w.topk
    assert view.right() < size[0] and w.width() == size[0]

    # the title, whole: its drawn text is as wide as the title's text in its font
    title = topk.titleLabel.item
    assert title.toPlainText() == "top 6 clipwise"
    box = title.mapRectToScene(title.boundingRect()).toRect().translated(view.topLeft())
    columns = [
        x
        for x in range(box.left(), box.right() + 1)
        if any(image.image.pixelColor(x, y).lightness() > 100 for y in range(box.top(), box.bottom() + 1))
    ]
    assert box.right() < view.right()
    assert columns[-1] - columns[0] >= QFontMetrics(title.font()).horizontalAdvance(title.toPlainText()) - 4

    # the score axis from 0 to 1, both ends labelled inside the view
    for value in (0.0, 1.0):
        x, y = image.point(topk, value, 0.0)
        below = QRect(x - 6, y + 6, 13, 16)
        assert view.contains(below) and image.ink(below) > 5, f"no label at {value}"

    # every bar, in its class's colour and as long as its score, with its value written at its end
    for row, score in enumerate(SCORES):
        y = len(NAMES) - 1 - row + 0.5  # the best at the top (by score, the default order)
        inside = y + 0.25  # off the row's centre line, where the name's tick mark reaches in
        assert image.colour(topk, score / 2, inside).rgb() == class_colour((row,)).rgb()
        assert image.colour(topk, min(1.0, score + 0.02), inside).rgb() != class_colour((row,)).rgb()
        (text,) = [t for t in topk.values if t.isVisible() and t.pos().y() == y]
        assert text.toPlainText() == f"{score:.2f}"
        written = text.mapRectToScene(text.boundingRect()).toRect().translated(view.topLeft())
        assert view.contains(written) and image.ink(written) > 20

    # short names whole, a long one shortened: the names take at most NAME_SHARE, the bars the rest
    names = [label for _, label in topk.row_axis._tickLevels[0]]
    assert {"Speech", "Dog", "Siren", "Music", "Bird"} < set(names)
    assert any(name.startswith("Wind") and name.endswith("…") for name in names)
    bars_width = image.point(topk, 1.0, 0.0)[0] - image.point(topk, 0.0, 0.0)[0]
    assert bars_width >= 0.4 * view.width()


def test_short_names_leave_the_room_beside_them_to_the_bars(window, grab, messages):
    names, scores = ["Dog", "Cat"], np.array([0.8, 0.3])
    live = LiveData()
    live.apply("scores", messages.scores(0, np.tile(scores, (20, 1)), names, 0, clipwise=scores))
    w = window(live, size=(1600, 900))
    w.redraw()
    image = grab(w)
    view = image.rect(w.topk_view)
    name_room = image.point(w.topk, 0.0, 0.0)[0] - view.left()
    assert name_room < QFontMetrics(w.font()).horizontalAdvance("Dog") + 50
    assert image.point(w.topk, 1.0, 0.0)[0] - image.point(w.topk, 0.0, 0.0)[0] >= 0.7 * view.width()
