"""The heatmap's colour scale and its provisional region, checked from the window's pixels."""

from PySide6.QtCore import QRect

from htsat_live.gui.live_data import LiveData


def test_the_colour_scale_runs_from_the_colour_of_0_to_that_of_1_and_matches_the_cells(window, grab, feed):
    live = LiveData()
    feed(live, 30, high={2: (5.0, 10.0, 0.9)})
    w = window(live, span_seconds=30, top_n=2)
    w.redraw()
    image = grab(w)
    bar = w.heatmap.colour_bar
    scale = bar.bar.mapRectToScene(bar.bar.boundingRect()).toRect().translated(image.rect(w.plots).topLeft())
    x = scale.center().x()

    def scale_colour(score: float):
        return image.image.pixelColor(x, round(scale.bottom() - score * (scale.height() - 1)))

    top, bottom = scale_colour(1.0), scale_colour(0.0)
    assert top.red() > 200 and top.green() > 200 and top.blue() < 100  # viridis' yellow
    assert bottom.red() < 90 and bottom.green() < 30 and bottom.blue() > 60  # viridis' dark purple
    for score, (px, py) in ((0.9, (7.0, 1.5)), (0.05, (20.0, 1.5))):  # Siren's row, at and after its high
        cell, marked = image.colour(w.heatmap, px, py), scale_colour(score)
        assert sum(abs(a - b) for a, b in zip(cell.getRgb()[:3], marked.getRgb()[:3])) < 30
    for value in (0.0, 1.0):  # both ends labelled, right of the scale
        y = round(scale.bottom() - value * (scale.height() - 1))
        assert image.ink(QRect(scale.right() + 4, y - 7, 30, 14)) > 5


def test_the_provisional_region_is_marked_by_a_line_and_hatching_that_leave_the_cells_colour(window, grab, feed):
    live = LiveData()
    feed(live, 30, high={2: (15.0, 30.0, 0.5)}, final_lag=4.0)  # frames after 26 s are provisional
    w = window(live, span_seconds=30, top_n=2)
    w.redraw()
    image = grab(w)
    assert abs(live.final_upto - 26.0) < 0.02
    cell = image.colour(w.heatmap, 22.0, 1.5).rgb()  # Siren, score 0.5, final
    _, final = image.row(w.heatmap, 1.3, 17.0, 25.0)
    assert all(c.rgb() == cell for c in final)  # no mark over final cells
    for y in (0.3, 1.3, 1.7):
        _, provisional = image.row(w.heatmap, y, 26.6, 29.6)
        same = image.colour(w.heatmap, 22.0, y).rgb()  # the same score in the final region
        unchanged = sum(c.rgb() == same for c in provisional) / len(provisional)
        assert 0.6 < unchanged < 0.95  # the cell's own colour between thin hatch lines
    x, _ = image.point(w.heatmap, live.final_upto, 0.0)
    for y in (0.5, 1.5):  # a light line down the boundary, in every row
        column = [image.image.pixelColor(x + dx, image.point(w.heatmap, 0.0, y)[1]).lightness() for dx in (-1, 0, 1)]
        assert max(column) > 170
