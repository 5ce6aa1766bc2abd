"""Two folders of a made-up site's recordings, to measure int8 drift on audio its calibration never heard
(docs/speed.md, "int8 on a site's own audio"):

    python scripts/site_recordings.py OUT [--calibration-minutes 5] [--probe-minutes 2] [--cache cache]

OUT/calibration and OUT/probes each hold one-minute recordings of quiet noise (about -50 dBFS) with sounds of
Debian's scratch library (downloaded with `apt-get download` into --cache) at random times and levels. The
library's files are dealt to the two folders, so that the probes hold sounds the calibration never heard.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from htsat_live.model.audio import read_clip
from htsat_live.model.timebase import SAMPLE_RATE
from htsat_live.training.clip_sources import ESC50_CLASSES
from htsat_live.training.sources import download_packages

RECORDING_SECONDS = 60
NOISE_LEVEL = 0.003  # standard deviation of the background noise, about -50 dBFS


def site_recording(sounds: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """One minute of noise with sounds laid over it every 2 to 8 s, each peaking between 0.05 and 0.5: [1920000]."""
    wave = NOISE_LEVEL * rng.standard_normal(RECORDING_SECONDS * SAMPLE_RATE)
    start = int(rng.uniform(0, 4) * SAMPLE_RATE)
    while start < wave.size:
        sound = sounds[rng.integers(len(sounds))][: wave.size - start]
        wave[start : start + sound.size] += sound * rng.uniform(0.05, 0.5) / max(np.abs(sound).max(), 1e-6)
        start += sound.size + int(rng.uniform(2, 8) * SAMPLE_RATE)
    return np.clip(wave, -1, 1).astype(np.float32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--calibration-minutes", type=int, default=5)
    parser.add_argument("--probe-minutes", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path("cache"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    download_packages(args.cache, ("scratch",))
    files = sorted(
        path
        for package, folder in ESC50_CLASSES.values()
        for path in (args.cache / "pkgs" / package / folder).iterdir()
        if path.is_file()
    )
    rng = np.random.default_rng(args.seed)
    halves = {"calibration": [], "probes": []}
    for index, path in enumerate(rng.permutation(files)):
        wave = read_clip(path)
        if wave.size >= SAMPLE_RATE // 20:
            halves["calibration" if index % 2 == 0 else "probes"].append(wave)
    for name, minutes in (("calibration", args.calibration_minutes), ("probes", args.probe_minutes)):
        (args.out / name).mkdir(parents=True, exist_ok=True)
        for minute in range(minutes):
            recording = args.out / name / f"{name}-{minute + 1:02d}.wav"
            sf.write(recording, site_recording(halves[name], rng), SAMPLE_RATE, subtype="PCM_16")
        print(f"{args.out / name}: {minutes} recordings of 1 minute from {len(halves[name])} sounds", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
