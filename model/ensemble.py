"""Ensembles: several models that share their labels, run on the same input, their framewise and clipwise
outputs averaged (the HTS-AT paper's ensemble of six AudioSet models averages the same way).

`ensemble(members)` is a plain Predictor whose backend runs every member's backend: the stream, the GUI and
the commands use it as they use one model. Its event rule (thresholds, median filter) is the first member's.
"""

import numpy as np

from htsat_live.model.predictor import Predictor


class EnsembleBackend:
    """Runs each member's backend on the same waves and averages their outputs."""

    def __init__(self, members: list[Predictor]):
        self.members = members
        self.name = members[0].backend.name  # the engine: every member is loaded on the same one
        self.device = members[0].backend.device

    def run(self, wave: np.ndarray, tile_short: bool) -> tuple[np.ndarray, np.ndarray]:
        outputs = [member.backend.run(wave, tile_short) for member in self.members]
        clipwise = np.mean([clip for clip, _ in outputs], axis=0, dtype=np.float32)  # [B, C]
        framewise = np.mean([frames for _, frames in outputs], axis=0, dtype=np.float32)  # [B, 1024, C]
        return clipwise, framewise


def ensemble(members: list[Predictor]) -> Predictor:
    """One Predictor averaging `members`, which must share their labels (ValueError naming what differs)."""
    first = members[0]
    for other in members[1:]:
        if len(other.labels) != len(first.labels):
            raise ValueError(
                f"ensemble: {other.source} has {len(other.labels)} classes and {first.source} "
                f"{len(first.labels)}; members must share their labels"
            )
        differing = next((i for i, (a, b) in enumerate(zip(first.labels, other.labels)) if a != b), None)
        if differing is not None:
            raise ValueError(
                f"ensemble: class {differing} is {other.labels[differing]!r} in {other.source} and "
                f"{first.labels[differing]!r} in {first.source}; members must share their labels"
            )
    source = " + ".join(member.source for member in members)
    return Predictor(
        EnsembleBackend(members), first.config, first.labels, first.thresholds, source, first.median_frames
    )


def members_of(model: Predictor) -> list[Predictor]:
    """The members of an ensemble; [model] for one model."""
    backend = model.backend
    return list(backend.members) if isinstance(backend, EnsembleBackend) else [model]


def ensemble_line(model: Predictor, rule_from_config: bool) -> str | None:
    """What a command says first about an ensemble (None for one model): its members and where its event
    rule comes from."""
    members = members_of(model)
    if len(members) == 1:
        return None
    rule = "the config" if rule_from_config else f"the first member, {members[0].source}"
    return (
        f"ensemble of {len(members)} models ({', '.join(m.source for m in members)}): scores averaged; "
        f"thresholds and median filter from {rule}"
    )
