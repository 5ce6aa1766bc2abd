"""Class colours as Qt colours: the palette and the rule are stream.colours', shared with the web page."""

from collections.abc import Sequence

from PySide6.QtGui import QColor

from htsat_live.stream.colours import PALETTE, class_colour_hex

__all__ = ["PALETTE", "class_colour"]


def class_colour(classes: Sequence[int]) -> QColor:
    """The colour of a detection target (stream.colours.class_colour_hex)."""
    return QColor(class_colour_hex(classes))
