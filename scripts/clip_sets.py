"""Build the clip-labelled sets of the README's figures from real recordings (training/clip_sources.py):

    python scripts/clip_sets.py esc50 OUT [--classes Human Music ...] [--takes 3] [--cache cache]
    python scripts/clip_sets.py speech-commands OUT [--words yes no ...] [--voices en en-us ...]
    python scripts/clip_sets.py soundscape ESC50 OUT.wav [--fold 1]

esc50: an ESC-50-shaped folder of Debian's scratch sounds (downloaded with `apt-get download` into --cache),
classes the starter model was never trained on, each recording cut into up to --takes 5-s clips, one fold per
recording. speech-commands: words spoken by espeak-ng (apt package espeak-ng) in several voices.
soundscape: one clip of each class of an ESC-50-shaped set's fold, in turn, 2 s apart over quiet noise, with
its truth as OUT.tsv (filename, onset, offset, event_label) and OUT_durations.tsv, for `htsat-live detect` with
that fold's model.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from htsat_live.model.audio import read_clip
from htsat_live.model.clip_set import read_clip_set
from htsat_live.model.event_table import write_events
from htsat_live.model.timebase import SAMPLE_RATE
from htsat_live.training.clip_sources import (
    ESC50_CLASSES,
    VOICES,
    WORDS,
    esc50_set,
    speech_commands_set,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    kinds = parser.add_subparsers(dest="kind", required=True)
    esc50 = kinds.add_parser("esc50")
    esc50.add_argument("out", type=Path)
    esc50.add_argument("--classes", nargs="+", choices=list(ESC50_CLASSES), default=list(ESC50_CLASSES))
    esc50.add_argument("--takes", type=int, default=3, help="5-s clips cut from one recording at most")
    esc50.add_argument("--cache", type=Path, default=Path("cache"), help="download directory (default: cache)")
    speech = kinds.add_parser("speech-commands")
    speech.add_argument("out", type=Path)
    speech.add_argument("--words", nargs="+", default=list(WORDS))
    speech.add_argument("--voices", nargs="+", default=list(VOICES))
    scene = kinds.add_parser("soundscape")
    scene.add_argument("esc50", type=Path)
    scene.add_argument("out", type=Path)
    scene.add_argument("--fold", type=int, default=1)
    args = parser.parse_args()
    if args.kind == "soundscape":
        return soundscape(args.esc50, args.out, args.fold)
    if args.kind == "esc50":
        counts = esc50_set(args.cache.resolve(), args.out, args.classes, args.takes)
        print(f"{sum(counts.values())} clips -> {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    else:
        print(f"{speech_commands_set(args.out, args.words, args.voices)} clips -> {args.out}")
    return 0


def soundscape(esc50: Path, out: Path, fold: int, gap_seconds: float = 2.0) -> int:
    clips = read_clip_set(esc50)
    rng = np.random.default_rng(fold)
    pieces, rows, at = [], [], gap_seconds
    for label in clips.labels:
        members = [clip for clip in clips.clips if clip.fold == fold and clip.labels[0] == label]
        wave = read_clip(members[int(rng.integers(len(members)))].path)
        wave = 0.5 * wave / max(1e-6, float(np.abs(wave).max()))
        pieces += [np.zeros(int(gap_seconds * SAMPLE_RATE), np.float32), wave]
        rows.append((out.name, round(at, 3), round(at + len(wave) / SAMPLE_RATE, 3), label))
        at += len(wave) / SAMPLE_RATE + gap_seconds
    scene = np.concatenate(pieces + [np.zeros(int(gap_seconds * SAMPLE_RATE), np.float32)])
    scene += 0.003 * rng.standard_normal(len(scene)).astype(np.float32)
    sf.write(str(out), scene, SAMPLE_RATE, subtype="PCM_16")
    write_events(out.with_suffix(".tsv"), rows)
    durations = out.with_name(f"{out.stem}_durations.tsv")
    durations.write_text(f"filename\tduration\n{out.name}\t{len(scene) / SAMPLE_RATE:.3f}\n", encoding="utf-8")
    print(f"{len(scene) / SAMPLE_RATE:.1f} s -> {out}; truth -> {out.with_suffix('.tsv')}, {durations}")
    for row in rows:
        print("\t".join(map(str, row)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
