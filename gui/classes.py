"""Which classes the panels show and in what order: one filter and one order, chosen by the user and
applied alike to the heatmap's rows, the top-k bars and the event lanes, so a class keeps its place
relative to the others in all three."""

from collections.abc import Sequence

import numpy as np

ORDERS = {"score": "by score", "alphabetical": "A to Z", "config": "model order"}  # key -> what the user reads


class ClassOrder:
    """`order` is a key of ORDERS; `filter_text` holds comma-separated terms, and a label matches when
    it contains any of them (case-insensitive; no terms: every label). `peaks` ([C], each class's
    highest score over the span shown) is what "by score" sorts by; the window renews it."""

    def __init__(self, order: str = "score", filter_text: str = ""):
        if order not in ORDERS:
            raise ValueError(f"unknown class order {order!r} (one of {', '.join(ORDERS)})")
        self.order = order
        self.terms = [term.strip().lower() for term in filter_text.split(",") if term.strip()]
        self.peaks = np.zeros(0, dtype=np.float32)

    def matches(self, label: str) -> bool:
        return not self.terms or any(term in label.lower() for term in self.terms)

    def key(self, label: str, classes: Sequence[int]) -> tuple:
        """Sort key of a detection target named `label` behind model classes `classes`: by the
        highest peak among them (ties by index), by label, or by the lowest class index."""
        if self.order == "alphabetical":
            return (label.lower(), min(classes))
        if self.order == "config":
            return (min(classes), label)
        peak = max((float(self.peaks[c]) for c in classes if c < len(self.peaks)), default=0.0)
        return (-peak, min(classes))

    def best(self, scores: np.ndarray, labels: Sequence[str], count: int) -> list[int]:
        """The `count` classes of highest `scores` ([C]) among the named ones that match the filter,
        in this order."""
        ranked = np.argsort(-scores, kind="stable")  # [C], best first
        chosen = []
        for index in ranked:
            if len(chosen) == count:
                break
            if labels[index] and self.matches(labels[index]):
                chosen.append(int(index))
        return sorted(chosen, key=lambda i: self.key(labels[i], (i,)))
