"""Class colours: one fixed, colour-blind-safe palette, and each class's colour chosen by its index,
so a class has the same colour in every panel and every run of the same model."""

from collections.abc import Sequence

from PySide6.QtGui import QColor

# Okabe & Ito's palette for colour-blind readers, without its black (the plots' background).
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")


def class_colour(classes: Sequence[int]) -> QColor:
    """The colour of a detection target, from the lowest model class index behind it (a class is its
    own target; a label group takes its first member's colour). Classes whose indices differ by a
    multiple of the palette's length share a colour; the names beside the rows tell them apart."""
    return QColor(PALETTE[min(classes) % len(PALETTE)])
