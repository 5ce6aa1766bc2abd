"""Fetch the real recordings the starter model is trained on, write their manifest, mix the soundscapes.

    python scripts/fetch_sounds.py [--cache cache] [--seed 8] [--train 4000 --val 300 --test 200] [--demo]

Downloads Debian packages (apt-get download), unpacks them (dpkg-deb -x) into the cache directory
(outside git), prepares 32-kHz clips under cache/clips/, records every source file's package, version,
licence and split in model/data/sources_manifest.json, and mixes the train/val/test soundscape sets
under cache/soundscapes/<split>/ (and, with --demo, the 60-s demo into model/data/).
"""

import argparse
import sys
from pathlib import Path

from htsat_live.training.soundscapes import DEMO_SETTINGS, make_demo, make_set
from htsat_live.training.sources import LABELS, fetch_sources, write_manifest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cache", type=Path, default=Path("cache"), help="download and clip directory (default: cache)"
    )
    parser.add_argument("--seed", type=int, default=8, help="seed of the split and of the mixing (default: 8)")
    parser.add_argument("--manifest", type=Path, default=Path("model/data/sources_manifest.json"))
    for split, count in (("train", 0), ("val", 0), ("test", 0)):
        parser.add_argument(
            f"--{split}", type=int, default=count, help=f"{split} soundscapes to mix (default: {count})"
        )
    parser.add_argument("--demo", action="store_true", help="mix the 60-s demo into model/data/demo.wav + demo.tsv")
    args = parser.parse_args()
    cache = args.cache.resolve()
    sources = fetch_sources(cache, args.seed)
    write_manifest(sources, args.seed, args.manifest)
    for label in LABELS:
        counts = {
            split: sum(1 for s in sources if s.label == label and s.split == split)
            for split in ("train", "val", "test")
        }
        groups = {split: len({s.group for s in sources if s.label == label and s.split == split}) for split in counts}
        print(f"{label:8s} " + "  ".join(f"{k} {counts[k]} files / {groups[k]} groups" for k in counts))
    print(f"manifest: {args.manifest}")
    for split in ("train", "val", "test"):
        if getattr(args, split):
            manifest = make_set(
                cache / "clips", sources, split, getattr(args, split), args.seed, cache / "soundscapes" / split
            )
            print(
                f"{split}: {len(manifest['clips'])} clips in {cache / 'soundscapes' / split} "
                f"(hash {manifest['hash'][:12]})"
            )
    if args.demo:
        make_demo(cache / "clips", sources, args.seed, args.manifest.parent, DEMO_SETTINGS)
        print(f"demo: {args.manifest.parent / 'demo.wav'} + demo.tsv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
