"""Write the recordings used for the streaming-vs-offline consistency table into a folder.

    python scripts/consistency_clips.py OUT_DIR
    htsat-live consistency OUT_DIR --model CHECKPOINT --hop 10 2.5 1.25 1

Three generated clips (noise that swells and fades, with a tone switching on and off; 25 s, 10 s
and 4 s, fixed seeds) and a copy of the 60-s demo soundscape shipped in model/data.
"""

import argparse
import shutil
from pathlib import Path

import numpy as np
import soundfile

from htsat_live.model.embedded import DEMO_RECORDING
from htsat_live.model.timebase import SAMPLE_RATE

CLIPS = {"noise_tone_25s.wav": (25.0, 1), "noise_tone_10s.wav": (10.0, 2), "noise_tone_4s.wav": (4.0, 3)}


def noise_tone(seconds: float, seed: int) -> np.ndarray:
    """float32 [N] at 32 kHz: noise under a 0.2-Hz swell plus a tone that is on half of every 10 s."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    envelope = 0.05 + 0.2 * (1 + np.sin(2 * np.pi * 0.2 * t + seed))
    tone = 0.2 * np.sin(2 * np.pi * (300 + 200 * seed) * t) * (np.sin(2 * np.pi * 0.1 * t) > 0)
    return (envelope * rng.standard_normal(len(t)) + tone).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the recordings to")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    for name, (seconds, seed) in CLIPS.items():
        soundfile.write(out / name, noise_tone(seconds, seed), SAMPLE_RATE, subtype="FLOAT")
    shutil.copyfile(DEMO_RECORDING, out / "demo_soundscape_60s.wav")
    print(f"{len(CLIPS) + 1} recordings -> {out}")


if __name__ == "__main__":
    main()
