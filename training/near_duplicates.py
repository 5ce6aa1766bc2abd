"""Finding one recording under several names: the same field recording shipped by two games, or cut into
takes that carry different names (crickets1 and crickets2, camel and dromedary).

A recording's fingerprint is its log energy in 40 log-spaced bands (100 Hz to 15 kHz) every 50 ms, each
band's mean over time removed (so the spectral colour that all rain or all sirens share drops out), each
frame scaled to unit length. Two recordings match when, at some time shift with at least 1 s of overlap,
their frames agree with a mean cosine of MATCH_SIMILARITY or more: what is left after removing the colour is
the recording's own time course, which two different recordings do not share (different recordings of one
kind of sound score about 0.5-0.75 here, cuts of one recording 0.85-1.0).
"""

import numpy as np
from scipy.signal import fftconvolve

from htsat_live.model.timebase import SAMPLE_RATE

HOP = 1600  # 50 ms
FFT = 2048
BANDS = np.geomspace(100.0, 15000.0, 41)  # edges of 40 bands, Hz
MAX_SECONDS = 30.0  # the first 30 s of a recording are compared
MIN_OVERLAP_FRAMES = 20  # 1 s
MATCH_SIMILARITY = 0.85


def fingerprint(wave: np.ndarray) -> np.ndarray:
    """32-kHz mono float32 [N] -> [frames, 40] unit-length frames of colour-free log band energies."""
    wave = wave[: int(MAX_SECONDS * SAMPLE_RATE)]
    if len(wave) < FFT:
        wave = np.pad(wave, (0, FFT - len(wave)))
    frames = np.lib.stride_tricks.sliding_window_view(wave, FFT)[::HOP] * np.hanning(FFT)  # [T, FFT]
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # [T, FFT/2 + 1]
    freqs = np.fft.rfftfreq(FFT, 1 / SAMPLE_RATE)
    bands = np.stack([(freqs >= low) & (freqs < high) for low, high in zip(BANDS[:-1], BANDS[1:])]).astype(np.float32)
    energy = np.log(power @ bands.T + 1e-8)  # [T, 40]
    energy -= energy.mean(axis=0, keepdims=True)
    return (energy / (np.linalg.norm(energy, axis=1, keepdims=True) + 1e-8)).astype(np.float32)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The best mean frame cosine of two fingerprints over time shifts with >= 1 s overlap (-1 if none)."""
    if min(len(a), len(b)) < MIN_OVERLAP_FRAMES:
        return -1.0
    summed = fftconvolve(a[::-1], b, axes=0).sum(axis=1)  # [len(a) + len(b) - 1]: sum of cosines per shift
    overlap = np.convolve(np.ones(len(a)), np.ones(len(b)))  # frames overlapping per shift
    return float(np.where(overlap >= MIN_OVERLAP_FRAMES, summed / overlap, -1.0).max())


def matching_groups(fingerprints: dict[str, np.ndarray], group_of: dict[str, str]) -> dict[str, str]:
    """Groups joined through matching recordings: item -> fingerprint, item -> group in; returns
    group -> the group it joins (the alphabetically first of its connected set)."""
    parent = {group: group for group in group_of.values()}

    def root(group: str) -> str:
        while parent[group] != group:
            parent[group] = parent[parent[group]]
            group = parent[group]
        return group

    items = sorted(fingerprints)
    for i, first in enumerate(items):
        for second in items[i + 1 :]:
            a, b = root(group_of[first]), root(group_of[second])
            if a != b and similarity(fingerprints[first], fingerprints[second]) >= MATCH_SIMILARITY:
                parent[max(a, b)] = min(a, b)
    return {group: root(group) for group in parent}
