"""Tag real recordings the starter model never met, from other Debian packages, and print top-1 agreement.

    python scripts/unseen_sources.py [--model CKPT] [--cache cache]

Each file below comes from a package, or is a recording, that model/data/sources_manifest.json does not
list (the script refuses one it lists); its expected class is what its name says it is. A recording longer
than 10 s is scored on its middle 10 s, a shorter one is tiled to 10 s as `predict` does.
"""

import argparse
import sys
from pathlib import Path

from htsat_live.model.loading import load_model
from htsat_live.model.timebase import WINDOW_SAMPLES
from htsat_live.training.sources import download_packages, load_clip, read_manifest

ASTERISK = "usr/share/asterisk/sounds"  # the Italian and Russian voices: speakers never met
SUPERTUX_MUSIC = "usr/share/games/supertux2/music"
WESNOTH = "usr/share/games/wesnoth/1.16/data/core/sounds"
HEDGEWARS = "usr/share/games/hedgewars/Data/Sounds"
KLETTRES = "usr/share/klettres"  # KDE's letter-learning game: its German speaker (the other languages train)

UNSEEN = (  # (package, path inside it, expected class)
    ("asterisk-core-sounds-it-wav", f"{ASTERISK}/it_IT_m_Carlo/demo-congrats.wav", "Speech"),
    ("asterisk-core-sounds-it-wav", f"{ASTERISK}/it_IT_m_Carlo/vm-intro.wav", "Speech"),
    ("asterisk-core-sounds-it-wav", f"{ASTERISK}/it_IT_m_Carlo/conf-onlyperson.wav", "Speech"),
    ("asterisk-core-sounds-ru-wav", f"{ASTERISK}/ru_RU_f_IvrvoiceRU/demo-congrats.wav", "Speech"),
    ("asterisk-core-sounds-ru-wav", f"{ASTERISK}/ru_RU_f_IvrvoiceRU/vm-intro.wav", "Speech"),
    ("asterisk-core-sounds-ru-wav", f"{ASTERISK}/ru_RU_f_IvrvoiceRU/conf-onlyperson.wav", "Speech"),
    ("supertux-data", f"{SUPERTUX_MUSIC}/tropical/tropicalbreeze.ogg", "Music"),
    ("supertux-data", f"{SUPERTUX_MUSIC}/tropical/saharan_penguin.ogg", "Music"),
    ("supertux-data", f"{SUPERTUX_MUSIC}/retro/classic.ogg", "Music"),
    ("supertux-data", f"{SUPERTUX_MUSIC}/retro/fortress_old.ogg", "Music"),
    ("supertux-data", f"{SUPERTUX_MUSIC}/retro/ice_music.ogg", "Music"),
    ("supertux-data", f"{SUPERTUX_MUSIC}/retro/cave_old.ogg", "Music"),
    ("supertux-data", f"{SUPERTUX_MUSIC}/misc/intro.ogg", "Music"),
    ("wesnoth-1.16-data", f"{WESNOTH}/horse-die.ogg", "Animal"),
    ("wesnoth-1.16-data", f"{WESNOTH}/horse-hit-1.ogg", "Animal"),
    ("wesnoth-1.16-data", f"{WESNOTH}/wolf-die-1.ogg", "Animal"),
    ("hedgewars-data", f"{HEDGEWARS}/rubberduck_water.ogg", "Water"),
    ("hedgewars-data", f"{HEDGEWARS}/planewater.ogg", "Water"),
    ("klettres-data", f"{KLETTRES}/de/syllab/affe.ogg", "Speech"),
    ("klettres-data", f"{KLETTRES}/de/syllab/baer.ogg", "Speech"),
    ("freedink-data", "usr/share/games/dink/dink/Sound/bird1.wav", "Bird"),
    ("lugaru-data", "usr/share/games/lugaru/Sounds/Hawk.ogg", "Bird"),
    ("trackballs-data", "usr/share/games/trackballs/sfx/capuch_monkey.wav", "Animal"),
    ("7kaa-data", "usr/share/games/7kaa/SOUND/RAIN.WAV", "Water"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="checkpoint (default: the embedded starter model)")
    parser.add_argument("--cache", type=Path, default=Path("cache"), help="download directory (default: cache)")
    parser.add_argument("--manifest", type=Path, default=Path("model/data/sources_manifest.json"))
    args = parser.parse_args()
    _, sources = read_manifest(args.manifest)
    known = {s.id for s in sources}
    seen = [f"{package}:{path}" for package, path, _ in UNSEEN if f"{package}:{path}" in known]
    if seen:
        raise SystemExit(f"these files are in the training manifest: {seen}")
    cache = args.cache.resolve()
    download_packages(cache, tuple(sorted({package for package, _, _ in UNSEEN})))
    model = load_model(args.model)
    hits = 0
    for package, path, expected in UNSEEN:
        wave = load_clip(cache / "pkgs" / package / path)
        if len(wave) > WINDOW_SAMPLES:
            start = (len(wave) - WINDOW_SAMPLES) // 2
            wave = wave[start : start + WINDOW_SAMPLES]
        clipwise = model.predict(wave)["clipwise"][0]  # [C]
        top = model.labels[int(clipwise.argmax())]
        hits += top == expected
        print(f"{expected:7s} -> {top:7s} {float(clipwise.max()):.2f}  {package}:{Path(path).name}")
    print(f"top-1 agreement: {hits}/{len(UNSEEN)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
