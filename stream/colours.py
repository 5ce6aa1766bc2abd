"""Class colours: one fixed, colour-blind-safe palette, and each class's colour chosen by its index, so a class has
the same colour in every view (the Qt view, the web page) and every run of the same model."""

from collections.abc import Sequence

# Okabe & Ito's palette for colour-blind readers, without its black (the plots' background).
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")


def class_colour_hex(classes: Sequence[int]) -> str:
    """The colour of a detection target as "#RRGGBB", from the lowest model class index behind it (a class is its
    own target; a label group takes its first member's colour). Classes whose indices differ by a multiple of the
    palette's length share a colour; the names beside the rows tell them apart. A target without classes (the
    loudness target) takes the palette's first colour."""
    return PALETTE[min(classes, default=0) % len(PALETTE)]
