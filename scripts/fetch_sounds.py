"""Fetch the real recordings the starter model is trained on and write their manifest.

    python scripts/fetch_sounds.py [--cache cache] [--seed 8] [--manifest model/data/sources_manifest.json]

Downloads Debian packages (apt-get download), unpacks them (dpkg-deb -x) into the cache directory
(outside git), prepares 32-kHz clips under cache/clips/ and records every source file's package, version,
licence and split in the manifest.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.sources import LABELS, fetch_sources, write_manifest  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("cache"), help="download and clip directory (default: cache)")
    parser.add_argument("--seed", type=int, default=8, help="seed of the train/val/test split (default: 8)")
    parser.add_argument("--manifest", type=Path, default=Path("model/data/sources_manifest.json"))
    args = parser.parse_args()
    sources = fetch_sources(args.cache.resolve(), args.seed)
    write_manifest(sources, args.seed, args.manifest)
    for label in LABELS:
        counts = {split: sum(1 for s in sources if s.label == label and s.split == split) for split in ("train", "val", "test")}
        groups = len({s.group for s in sources if s.label == label})
        print(f"{label:8s} {groups:4d} groups  " + "  ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"manifest: {args.manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
