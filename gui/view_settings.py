"""The user's choices of view, kept between runs in QSettings: class order, span, heatmap rows,
filter and window size. A value that is missing or no longer valid falls back to its default."""

from dataclasses import dataclass

from PySide6.QtCore import QSettings

from htsat_live.gui.classes import ORDERS
from htsat_live.gui.live_data import SPANS_SECONDS

MAX_ROWS = 64  # heatmap rows the user may ask for


@dataclass
class ViewChoices:
    order: str = "score"  # a key of classes.ORDERS
    span: int = 30  # seconds shown, one of SPANS_SECONDS
    rows: int = 8  # heatmap rows, 1 to MAX_ROWS
    filter: str = ""
    width: int = 1400  # window size in pixels
    height: int = 860


def load_choices(settings: QSettings) -> ViewChoices:
    default = ViewChoices()
    order = str(settings.value("view/order", default.order))
    span = _int(settings.value("view/span"), default.span)
    rows = _int(settings.value("view/rows"), default.rows)
    width = _int(settings.value("window/width"), default.width)
    height = _int(settings.value("window/height"), default.height)
    return ViewChoices(
        order=order if order in ORDERS else default.order,
        span=span if span in SPANS_SECONDS else default.span,
        rows=rows if 1 <= rows <= MAX_ROWS else default.rows,
        filter=str(settings.value("view/filter", default.filter)),
        width=width if width > 0 else default.width,
        height=height if height > 0 else default.height,
    )


def save_choices(settings: QSettings, choices: ViewChoices) -> None:
    settings.setValue("view/order", choices.order)
    settings.setValue("view/span", choices.span)
    settings.setValue("view/rows", choices.rows)
    settings.setValue("view/filter", choices.filter)
    settings.setValue("window/width", choices.width)
    settings.setValue("window/height", choices.height)
    settings.sync()


def _int(value, default: int) -> int:
    """An integer setting as stored (an int, or its text in an INI file), else `default`."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
