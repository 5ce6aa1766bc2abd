"""Matching one recording under several names, and not matching two recordings of one kind of sound."""

import numpy as np

from htsat_live.training.near_duplicates import (
    MATCH_SIMILARITY,
    fingerprint,
    matching_groups,
    similarity,
)

RATE = 32000


def rain_like(seed: int, seconds: float = 6.0) -> np.ndarray:
    """Brown-ish noise whose loudness wanders: one 'recording' of a stationary kind of sound."""
    rng = np.random.default_rng(seed)
    noise = np.cumsum(rng.standard_normal(int(seconds * RATE))).astype(np.float32)
    noise -= np.convolve(noise, np.ones(64) / 64, mode="same")  # remove the drift, keep the colour
    envelope = np.repeat(0.3 + rng.random(int(seconds * 10)), RATE // 10)[: len(noise)]
    return (noise * envelope / np.abs(noise).max()).astype(np.float32)


def test_a_cut_of_a_recording_matches_it_and_another_recording_of_its_kind_does_not():
    recording = rain_like(1)
    cut = 0.5 * recording[RATE : 4 * RATE] + 0.001 * np.random.default_rng(9).standard_normal(3 * RATE).astype(
        np.float32
    )
    other = rain_like(2)
    assert similarity(fingerprint(recording), fingerprint(cut)) >= MATCH_SIMILARITY
    assert similarity(fingerprint(recording), fingerprint(other)) < MATCH_SIMILARITY
    assert similarity(fingerprint(recording), fingerprint(recording[: RATE // 2])) == -1.0  # under 1 s: no verdict


def test_matching_recordings_join_their_groups_through_chains():
    a, b = rain_like(1), rain_like(2)
    prints = {
        "x1": fingerprint(a),
        "y1": fingerprint(a[2 * RATE :]),
        "y2": fingerprint(b),
        "z1": fingerprint(b[RATE:]),
        "w1": fingerprint(rain_like(3)),
    }
    groups = matching_groups(prints, {"x1": "pkg1:x", "y1": "pkg2:y", "y2": "pkg2:y", "z1": "pkg3:z", "w1": "pkg4:w"})
    assert groups == {"pkg1:x": "pkg1:x", "pkg2:y": "pkg1:x", "pkg3:z": "pkg1:x", "pkg4:w": "pkg4:w"}
