"""Clip-labelled sets built here from real recordings, in the layouts people download (for the tests, and for
the figures of `scripts/clip_sets.py`):

- `esc50_set`: an ESC-50-shaped folder (meta/esc50.csv, audio/{fold}-{recording}-{take}-{target}.wav, 5-s clips)
  of classes of Debian-packaged recordings that the starter model was not trained on (ESC50_CLASSES; the
  package `scratch`'s sound library, whose Animal and water sounds the starter did train on and which are
  left out). Long recordings give several 5-s clips; the clips of one recording share a fold, as in ESC-50.
- `speech_commands_set`: a Speech Commands-shaped folder of words spoken by espeak-ng (Debian's `espeak-ng`)
  in several voices, 1-s clips at 16 kHz; one voice is the validation list, another the test list, as
  Speech Commands splits by speaker.
"""

import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from htsat_live.model.audio import read_clip
from htsat_live.model.timebase import SAMPLE_RATE

SCRATCH_SOUNDS = "usr/share/scratch/Media/Sounds"
# class -> (package, folder inside it); none of these files is in model/data/sources_manifest.json
ESC50_CLASSES = {
    "Human": ("scratch", f"{SCRATCH_SOUNDS}/Human"),
    "Vocals": ("scratch", f"{SCRATCH_SOUNDS}/Vocals"),
    "Music": ("scratch", f"{SCRATCH_SOUNDS}/Music Loops"),
    "Electronic": ("scratch", f"{SCRATCH_SOUNDS}/Electronic"),
    "Instrument": ("scratch", f"{SCRATCH_SOUNDS}/Instruments"),
    "Percussion": ("scratch", f"{SCRATCH_SOUNDS}/Percussion"),
}
CLIP_SECONDS = 5.0  # ESC-50's clip length
MIN_SECONDS = 0.05  # recordings shorter than this are left out
WORDS = ("yes", "no", "up", "down", "left", "right", "stop", "go")
VOICES = ("en", "en-us", "en+f3", "en+m3", "en-gb-scotland", "en+f4", "en-us+m5", "en+klatt")
SPEECH_RATE = 16000
SPEECH_SECONDS = 1.0


def esc50_set(
    cache: Path, out: Path, classes: list[str] | None = None, takes: int = 3, folds: int = 5, seed: int = 0
) -> dict[str, int]:
    """Write an ESC-50-shaped set of `classes` (default every one of ESC50_CLASSES) to `out`: each recording cut
    into at most `takes` 5-s clips, recordings dealt to `folds` folds per class. Downloads the packages into
    cache (training.sources.download_packages). Returns clips per class."""
    from htsat_live.training.sources import download_packages

    classes = list(classes or ESC50_CLASSES)
    download_packages(cache, tuple(sorted({ESC50_CLASSES[name][0] for name in classes})))
    (out / "audio").mkdir(parents=True, exist_ok=True)
    (out / "meta").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows, counts, recording_id = [], {}, 0
    clip_samples = int(CLIP_SECONDS * SAMPLE_RATE)
    for target, name in enumerate(classes):
        package, folder = ESC50_CLASSES[name]
        files = sorted((cache / "pkgs" / package / folder).iterdir())
        fold_of = {file: 1 + (i % folds) for i, file in enumerate(rng.permutation(files))}
        counts[name] = 0
        for file in files:
            wave = read_clip(file)
            if len(wave) < MIN_SECONDS * SAMPLE_RATE:
                continue
            recording_id += 1
            pieces = max(1, min(takes, len(wave) // clip_samples))
            for take in range(pieces):
                clip = f"{fold_of[file]}-{recording_id}-{chr(ord('A') + take)}-{target}.wav"
                sf.write(
                    str(out / "audio" / clip),
                    wave[take * clip_samples : (take + 1) * clip_samples],
                    SAMPLE_RATE,
                    subtype="PCM_16",
                )
                rows.append(f"{clip},{fold_of[file]},{target},{name},False,{recording_id},{chr(ord('A') + take)}")
                counts[name] += 1
    (out / "meta" / "esc50.csv").write_text(
        "filename,fold,target,category,esc10,src_file,take\n" + "\n".join(rows) + "\n", encoding="utf-8"
    )
    return counts


def spoken_word(word: str, voice: str) -> np.ndarray:
    """One word by espeak-ng in `voice`, as 1 s at 16 kHz (centred, zero-padded or cut)."""
    import soxr

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "word.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), word], check=True, capture_output=True)
        wave, rate = sf.read(str(path), dtype="float32")
    wave = soxr.resample(wave, rate, SPEECH_RATE)
    length = int(SPEECH_SECONDS * SPEECH_RATE)
    clip = np.zeros(length, np.float32)
    wave = wave[:length]
    start = (length - len(wave)) // 2
    clip[start : start + len(wave)] = wave
    return clip


def speech_commands_set(out: Path, words=WORDS, voices=VOICES, val_voice: int = 0, test_voice: int = 1) -> int:
    """Write a Speech Commands-shaped set to `out`: <word>/<voice>_nohash_0.wav, validation_list.txt and
    testing_list.txt (the clips of one voice each), and _background_noise_/ with a white-noise file (not a
    class: the reader leaves it out). Returns the number of clips."""
    lists = {"validation_list.txt": [], "testing_list.txt": []}
    count = 0
    for word in words:
        (out / word).mkdir(parents=True, exist_ok=True)
        for v, voice in enumerate(voices):
            name = f"{word}/{re.sub(r'[^a-z0-9]+', '', voice)}_nohash_0.wav"
            sf.write(str(out / name), spoken_word(word, voice), SPEECH_RATE, subtype="PCM_16")
            count += 1
            if v == val_voice:
                lists["validation_list.txt"].append(name)
            elif v == test_voice:
                lists["testing_list.txt"].append(name)
    for list_name, names in lists.items():
        (out / list_name).write_text("\n".join(names) + "\n", encoding="utf-8")
    (out / "_background_noise_").mkdir(exist_ok=True)
    noise = np.random.default_rng(0).standard_normal(SPEECH_RATE * 3).astype(np.float32) * 0.05
    sf.write(str(out / "_background_noise_" / "white_noise.wav"), noise, SPEECH_RATE, subtype="PCM_16")
    return count
