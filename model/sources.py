"""Real recordings for the starter model: which Debian packages, which files, which class, which split.

No sound-event data set can be downloaded here, but Debian ships real recordings inside packages: spoken
prompts and words in many voices and languages, music, ringtones and alarm clocks, animal and bird calls,
water sounds. `fetch_sources` downloads the packages with `apt-get download`, unpacks them with
`dpkg-deb -x` (no root needed), opens gcompris' Qt resource files with PySide6's QResource, and turns
every chosen file into a 32-kHz mono clip with leading and trailing silence trimmed.

Each recording belongs to a group: for speech the speaker (one language directory or voice of one package),
for everything else the recording, with its numbered takes (bird1_00, bird1_01) counted as one. Splits are
drawn per class over groups, so a voice or a recording is never in two splits; a file whose bytes recur
elsewhere is kept only in the first split that has it. Every source's package, version and licence (from
the package's DEP-5 copyright file) goes into the manifest that ships beside the weights.
"""

import fnmatch
import hashlib
import json
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 32000
TRIM_DB = 40.0  # trim leading/trailing audio quieter than the clip's peak frame minus this
TRIM_FRAME = 640  # 20 ms
SPEECH_FILES_PER_SPEAKER = 24

LABELS = ("Speech", "Music", "Bird", "Animal", "Alarm", "Water")

# package -> licence where the copyright file is not machine-readable (DEP-5)
LICENCE_OVERRIDES = {"asterisk-moh-opsound-wav": "CC-BY-SA-3.0", "pingus-data": "GPL-2+", "wesnoth-1.16-data": "GPL-2+"}

RCC_PACKAGE = "gcompris-qt-data"
RCC_DIR = "usr/share/gcompris-qt/rcc"
RCC_AUDIO_DIR = "rcc-audio"  # where the audio inside the .rcc files is written, inside the package dir
GCOMPRIS = f"{RCC_AUDIO_DIR}/gcompris/src"
TUXPAINT_STAMPS = "usr/share/tuxpaint/stamps"
THEMES = "usr/share/sounds"
HEDGEWARS = "usr/share/games/hedgewars/Data"
WIDELANDS = "usr/share/games/widelands/data"
MEGAGLEST = "usr/share/games/megaglest"
WESNOTH = "usr/share/games/wesnoth/1.16/data/core/sounds"
MINETEST = "usr/share/games/minetest/games/minetest_game/mods"


@dataclass(frozen=True)
class Rule:
    """Files of one package that hold one class. `pattern` is a regular expression matched against the
    path inside the unpacked package; its named group `group`, when present, names the speaker."""

    label: str
    package: str
    pattern: str


RULES = (
    # speech: single words and prompts; one language directory or voice of one package is one speaker
    Rule("Speech", "asterisk-core-sounds-en-wav", r"usr/share/asterisk/sounds/(?P<group>en_US_f_Allison)/[^/]+\.wav"),
    Rule("Speech", "asterisk-core-sounds-fr-wav", r"usr/share/asterisk/sounds/(?P<group>fr_[^/]+)/[^/]+\.wav"),
    Rule("Speech", "asterisk-core-sounds-es-wav", r"usr/share/asterisk/sounds/(?P<group>es_[^/]+)/[^/]+\.wav"),
    Rule("Speech", "ktuberling-data", r"usr/share/ktuberling/sounds/(?P<group>[^/.]+)/[^/]+\.(ogg|wav)"),
    Rule("Speech", "tuxpaint-stamps-default", rf"{TUXPAINT_STAMPS}/.+_desc_(?P<group>[a-z]{{2}}(_[A-Za-z]+)?)\.ogg"),
    Rule("Speech", "hedgewars-data", rf"{HEDGEWARS}/Sounds/voices/(?P<group>(?!Robot)[^/]+)/[^/]+\.ogg"),  # Robot is vocoded
    # music: music-on-hold tracks, world music, solo instruments, musical ringtones, game soundtracks
    Rule("Music", "asterisk-moh-opsound-wav", r"usr/share/asterisk/moh/[^/]+\.wav"),
    Rule("Music", RCC_PACKAGE, rf"{GCOMPRIS}/activities/explore_world_music/resource/music/[^/]+\.ogg"),
    Rule("Music", RCC_PACKAGE, rf"{GCOMPRIS}/activities/instruments/resource/[^/]+\.ogg"),
    Rule("Music", RCC_PACKAGE, rf"{GCOMPRIS}/activities/memory-sound/resource/guitar_melody\.ogg"),
    Rule("Music", "lomiri-sounds", r"usr/share/sounds/lomiri/ringtones/(?!Alarm)[^/]+\.ogg"),
    Rule("Music", "tuxpaint-stamps-default", rf"{TUXPAINT_STAMPS}/hobbies/music/[a-z]+/(?![a-z_]*_desc)[a-z_]+\.ogg"),
    Rule("Music", "hedgewars-data", rf"{HEDGEWARS}/Music/[^/]+\.ogg"),
    Rule("Music", "colobot-common-sounds", r"usr/share/games/colobot/music/[^/]+\.ogg"),
    Rule("Music", "frozen-bubble-data", r"usr/share/games/frozen-bubble/snd/[a-z0-9-]*zik[a-z0-9-]*\.ogg"),
    # birds
    Rule("Bird", "tuxpaint-stamps-default", rf"{TUXPAINT_STAMPS}/animals/birds/(?![a-z_]*_desc)[a-z_]+\.ogg"),
    Rule("Bird", RCC_PACKAGE, rf"{GCOMPRIS}/activities/explore_farm_animals/resource/animals/(owl|duck|chickens)\.ogg"),
    Rule("Bird", "sound-icons", r"usr/share/sounds/sound-icons/canary-long\.wav"),
    Rule("Bird", "widelands-data", rf"{WIDELANDS}/sound/animals/bird[0-9]_[0-9]+\.ogg"),
    Rule("Bird", "widelands-data", rf"{WIDELANDS}/world/critters/duck/duck_[0-9]+\.ogg"),
    Rule("Bird", "megaglest-data", rf"{MEGAGLEST}/tilesets/autumn/sounds/owl\.ogg"),
    Rule("Bird", "megaglest-data", rf"{MEGAGLEST}/techs/megapack/factions/indian/units/thunderbird/sounds/eagle_(ack|select)[0-9]\.wav"),
    Rule("Bird", "simutrans-pak64", r"usr/share/games/simutrans/pak/sound/seagulls\.wav"),
    Rule("Bird", "wesnoth-1.16-data", rf"{WESNOTH}/ambient/birds[0-9]\.ogg"),
    # other animals: mammals (dogs, cats, farm and wild animals), frogs, insects
    Rule("Animal", "tuxpaint-stamps-default", rf"{TUXPAINT_STAMPS}/animals/(mammals|marsupials|amphibians|insects)/([a-z]+/)?(?![a-z_0-9-]*_desc)[a-z_0-9]+\.ogg"),
    Rule("Animal", "tuxpaint-stamps-default", rf"{TUXPAINT_STAMPS}/seasonal/halloween/blackcat\.ogg"),
    Rule("Animal", RCC_PACKAGE, rf"{GCOMPRIS}/activities/explore_farm_animals/resource/animals/(cat|dog|cow|horse|pig|sheep)\.ogg"),
    Rule("Animal", RCC_PACKAGE, rf"{GCOMPRIS}/activities/memory-sound/resource/LRBark_[0-9]_LA_cut\.ogg"),
    Rule("Animal", "widelands-data", rf"{WIDELANDS}/sound/animals/(boar|frog|(coyote|crickets[0-9]|moose|stag|wolf)_[0-9]+)\.ogg"),
    Rule("Animal", "widelands-data", rf"{WIDELANDS}/sound/farm/(farm_animal|horse|sheep)_[0-9]+\.ogg"),
    Rule("Animal", "megaglest-data", rf"{MEGAGLEST}/techs/megapack/commondata/sounds/(cow|pig)_(ack|select)[0-9]\.wav"),
    Rule("Animal", "megaglest-data", rf"{MEGAGLEST}/techs/megapack/factions/persian/units/sheep/sounds/sheep[0-9]+\.wav"),
    Rule("Animal", "megaglest-data", rf"{MEGAGLEST}/techs/megapack/factions/indian/units/beehive/sounds/bee[0-9]\.wav"),
    Rule("Animal", "megaglest-data", rf"{MEGAGLEST}/tilesets/(birch_forest|desert2)/sounds/wolf\.wav"),
    Rule("Animal", "megaglest-data", rf"{MEGAGLEST}/tilesets/pine_peat/sounds/mudchute_cow_1\.ogg"),
    Rule("Animal", "simutrans-pak64", r"usr/share/games/simutrans/pak/sound/horse\.wav"),
    Rule("Animal", "wesnoth-1.16-data", rf"{WESNOTH}/wolf-growl-[0-9]\.ogg"),
    # alarms (AudioSet's Alarm: alarm clocks, telephone rings, sirens, horns, whistles)
    Rule("Alarm", "lomiri-sounds", r"usr/share/sounds/lomiri/ringtones/Alarm[^/]*\.ogg"),
    Rule("Alarm", "sound-theme-freedesktop", rf"{THEMES}/freedesktop/stereo/(alarm-clock-elapsed|phone-[a-z-]+)\.oga"),
    Rule("Alarm", "oxygen-sounds", rf"{THEMES}/Oxygen-Im-Phone-Ring\.ogg"),
    Rule("Alarm", "gnome-audio", rf"{THEMES}/phone\.wav"),
    Rule("Alarm", RCC_PACKAGE, rf"{GCOMPRIS}/activities/memory-sound/resource/LRRing_01_LA\.ogg"),
    Rule("Alarm", "tuxpaint-stamps-default", rf"{TUXPAINT_STAMPS}/vehicles/emergency/firetruck\.ogg"),
    Rule("Alarm", "heroes-sound-effects", r"usr/share/games/heroes/sfx/(clock0[12]|claxon)\.wav"),
    Rule("Alarm", "simutrans-pak64", r"usr/share/games/simutrans/pak/sound/boat-horn\.wav"),
    Rule("Alarm", "hedgewars-data", rf"{HEDGEWARS}/Sounds/Whistle\.ogg"),
    Rule("Alarm", "lincity-ng-data", r"usr/share/games/lincity-ng/sounds/FireStation[0-9]\.wav"),
    Rule("Alarm", "supertux-data", r"usr/share/games/supertux2/sounds/phone\.wav"),
    Rule("Alarm", "pysiogame", r"usr/share/games/pysiogame/res/sounds/sfx_whistle0[34]\.ogg"),
    # water: filling, pouring, bubbling, dripping, splashing, rain, streams, waves, a flushing toilet
    Rule("Water", RCC_PACKAGE, rf"{GCOMPRIS}/activities/canal_lock/resource/water_fill\.wav"),
    Rule("Water", RCC_PACKAGE, rf"{GCOMPRIS}/core/resource/sounds/water\.wav"),
    Rule("Water", RCC_PACKAGE, rf"{GCOMPRIS}/activities/watercycle/resource/(harbor[12]|bubble)\.wav"),
    Rule("Water", RCC_PACKAGE, rf"{GCOMPRIS}/activities/clickgame/resource/(bubble|drip)\.wav"),
    Rule("Water", RCC_PACKAGE, rf"{GCOMPRIS}/activities/memory-sound/resource/LRRain_in_garden_01_LA_cut\.ogg"),
    Rule("Water", "tuxpaint-stamps-default", rf"{TUXPAINT_STAMPS}/household/toilet\.ogg"),
    Rule("Water", "sound-icons", r"usr/share/sounds/sound-icons/glass-water-1\.wav"),
    Rule("Water", "lincity-ng-data", r"usr/share/games/lincity-ng/sounds/Water[0-9]\.wav"),
    Rule("Water", "megaglest-data", rf"{MEGAGLEST}/data/core/water_sounds/water[0-9]\.wav"),
    Rule("Water", "megaglest-data", rf"{MEGAGLEST}/tilesets/[a-z_0-9]+/sounds/rain\.(ogg|wav)"),
    Rule("Water", "minetest-data", rf"{MINETEST}/(env_sounds/sounds/env_sounds_water|default/sounds/default_water_footstep)\.[0-9]\.ogg"),
    Rule("Water", "pingus-data", r"usr/share/games/pingus/data/sounds/splash\.wav"),
    Rule("Water", "simutrans-pak64", r"usr/share/games/simutrans/pak/sound/Water\.wav"),
    Rule("Water", "supertux-data", r"usr/share/games/supertux2/sounds/(rain|waterfall|splash)\.(wav|ogg)"),
    Rule("Water", "tuxpaint-data", r"usr/share/tuxpaint/sounds/bubble\.wav"),
    Rule("Water", "widelands-data", rf"{WIDELANDS}/sound/empire/(beer|wine)bubble_[0-9]+\.ogg"),
    Rule("Water", "hedgewars-data", rf"{HEDGEWARS}/Sounds/(Droplet[0-9]|splash)\.ogg"),
)

PACKAGES = tuple(sorted({rule.package for rule in RULES}))


@dataclass(frozen=True)
class Source:
    id: str  # "<package>:<path inside the package>"
    label: str
    package: str
    version: str
    licence: str
    group: str  # split unit: the speaker for speech, the recording otherwise
    split: str = ""  # "train", "val" or "test"
    seconds: float = 0.0  # after trimming silence

    @property
    def clip_name(self) -> str:
        """File name of the prepared 32-kHz clip: readable and unique."""
        digest = hashlib.sha1(self.id.encode()).hexdigest()[:10]
        stem = re.sub(r"[^A-Za-z0-9]+", "_", Path(self.id.split(":", 1)[1]).stem)[-40:]
        return f"{self.label}/{stem}_{digest}.wav"


def download_packages(cache: Path, packages=PACKAGES) -> dict[str, str]:
    """apt-get download + dpkg-deb -x every package into cache/pkgs/<name>; returns package -> version."""
    debs, unpacked = cache / "debs", cache / "pkgs"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)
    versions = {}
    for package in packages:
        deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
        versions[package] = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True).stdout.strip()
        target = unpacked / package
        if not target.is_dir():
            subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
    return versions


def extract_rcc_audio(package_dir: Path) -> int:
    """Write the audio files inside gcompris' Qt resource files to package_dir/rcc-audio/; returns how many."""
    from PySide6.QtCore import QDirIterator, QFile, QIODevice, QResource

    for rcc in sorted((package_dir / RCC_DIR).glob("*.rcc")):
        if not QResource.registerResource(str(rcc)):
            raise RuntimeError(f"{rcc}: Qt could not open this resource file")
    count = 0
    entries = QDirIterator(":/", QDirIterator.IteratorFlag.Subdirectories)
    while entries.hasNext():
        name = entries.next()
        if not name.lower().endswith((".ogg", ".wav")):
            continue
        resource = QFile(name)
        if not resource.open(QIODevice.OpenModeFlag.ReadOnly):
            raise RuntimeError(f"{name}: Qt could not read this resource")
        target = package_dir / RCC_AUDIO_DIR / name.removeprefix(":/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(bytes(resource.readAll().data()))
        count += 1
    return count


def copyright_licences(copyright_file: Path) -> list[tuple[list[str], str]]:
    """(file patterns, licence) for each `Files:` stanza of a DEP-5 copyright file, in file order."""
    stanzas, patterns, in_files = [], None, False
    for line in copyright_file.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("Files:"):
            patterns, in_files = line.removeprefix("Files:").split(), True
        elif in_files and line.startswith((" ", "\t")):
            patterns.extend(line.split())  # a file list continued on the next lines
        else:
            in_files = False
            if line.startswith("License:") and patterns is not None:
                stanzas.append((patterns, line.removeprefix("License:").strip()))
                patterns = None
    return stanzas


def licence_of(package: str, path: str, stanzas: list[tuple[list[str], str]]) -> str:
    """The licence of the last stanza whose pattern matches the end of `path` (DEP-5: last match wins)."""
    if package in LICENCE_OVERRIDES:
        return LICENCE_OVERRIDES[package]
    found = "see /usr/share/doc/%s/copyright" % package
    for patterns, licence in stanzas:
        if any(p != "debian/*" and fnmatch.fnmatch(path, p if p == "*" else "*" + p.lstrip("./")) for p in patterns):
            found = licence
    return found


def find_sources(cache: Path, versions: dict[str, str]) -> list[Source]:
    """Every file that a rule picks, with its class, speaker group, version and licence (no split yet)."""
    sources = []
    for rule in RULES:
        root = cache / "pkgs" / rule.package
        stanzas = copyright_licences(root / f"usr/share/doc/{rule.package}/copyright")
        pattern = re.compile(rule.pattern)
        picked = []
        for file in sorted(root.rglob("*")):
            relative = file.relative_to(root).as_posix()
            match = pattern.fullmatch(relative)
            if match and file.is_file():
                group = match.groupdict().get("group") or recording_of(relative)
                picked.append((f"{rule.package}:{group}", relative))
        if rule.label == "Speech":
            picked = _spread_per_group(picked, SPEECH_FILES_PER_SPEAKER)
        for group, relative in picked:
            sources.append(Source(f"{rule.package}:{relative}", rule.label, rule.package, versions[rule.package],
                                  licence_of(rule.package, relative, stanzas), group))
    return sources


def recording_of(relative: str) -> str:
    """The recording a file was cut from: its name without a trailing take number, so the numbered takes
    of one recording (bird1_00.ogg, bird1_01.ogg; water0.wav ... water5.wav; rain.ogg in several folders)
    form one group and never straddle two splits."""
    return re.sub(r"[_.\- ]?[0-9]+$", "", Path(relative).stem)


def _spread_per_group(picked: list[tuple[str, str]], per_group: int) -> list[tuple[str, str]]:
    """At most `per_group` files of each group, evenly spaced through its sorted file list."""
    kept = []
    for group in sorted({g for g, _ in picked}):
        files = [item for item in picked if item[0] == group]
        step = max(1, len(files) // per_group)
        kept.extend(files[::step][:per_group])
    return kept


def assign_splits(sources: list[Source], seed: int, test_share: float = 0.2, val_share: float = 0.1) -> list[Source]:
    """Split every class by group: at least 2 groups for test and 1 for validation, the rest for training."""
    rng = np.random.default_rng(seed)
    split_of = {}
    for label in LABELS:
        groups = sorted({s.group for s in sources if s.label == label})
        if len(groups) < 5:
            raise ValueError(f"class {label!r} has {len(groups)} distinct recordings/speakers; at least 5 are needed")
        order = [groups[i] for i in rng.permutation(len(groups))]
        n_test = max(2, round(test_share * len(groups)))
        n_val = max(1, round(val_share * len(groups)))
        for i, group in enumerate(order):
            split_of[(label, group)] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return [Source(**{**asdict(s), "split": split_of[(s.label, s.group)]}) for s in sources]


def drop_cross_split_duplicates(sources: list[Source], cache: Path) -> list[Source]:
    """Keep a recording whose bytes sit in several places (ktuberling's Serbian script variants share their
    files) only in the first split of train, val, test that holds it, so a test file is never a training file."""
    order = {"train": 0, "val": 1, "test": 2}
    digests = {s.id: hashlib.sha1((cache / "pkgs" / s.package / s.id.split(":", 1)[1]).read_bytes()).hexdigest() for s in sources}
    first_split = {}
    for source in sorted(sources, key=lambda s: order[s.split]):
        first_split.setdefault(digests[source.id], source.split)
    return [s for s in sources if first_split[digests[s.id]] == s.split]


def load_clip(path: Path) -> np.ndarray:
    """A file as 32-kHz mono float32, with leading and trailing silence trimmed."""
    wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    wave = wave.mean(axis=1)  # [N, channels] -> [N]
    if rate != SAMPLE_RATE:
        wave = soxr.resample(wave, rate, SAMPLE_RATE).astype(np.float32)
    return trim_silence(wave)


def trim_silence(wave: np.ndarray, floor_db: float = TRIM_DB) -> np.ndarray:
    """Cut the leading and trailing frames more than floor_db below the loudest 20-ms frame."""
    n = len(wave) // TRIM_FRAME
    if n == 0:
        return wave
    energy = (wave[: n * TRIM_FRAME].reshape(n, TRIM_FRAME) ** 2).mean(axis=1)  # [n]
    if energy.max() == 0:
        return wave[:0]  # digital silence
    loud = np.flatnonzero(energy >= energy.max() * 10 ** (-floor_db / 10))
    return wave[loud[0] * TRIM_FRAME: (loud[-1] + 1) * TRIM_FRAME]


def prepare_clips(cache: Path, sources: list[Source]) -> list[Source]:
    """Write each source as a trimmed 32-kHz clip under cache/clips/; drops clips shorter than 50 ms."""
    from tqdm import tqdm

    kept = []
    for source in tqdm(sources, desc="preparing clips", unit="clip"):
        package, relative = source.id.split(":", 1)
        target = cache / "clips" / source.clip_name
        if not target.is_file():
            wave = load_clip(cache / "pkgs" / package / relative)
            if len(wave) < SAMPLE_RATE // 20:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(target), wave, SAMPLE_RATE, subtype="PCM_16")
        kept.append(Source(**{**asdict(source), "seconds": round(sf.info(str(target)).duration, 3)}))
    return kept


def fetch_sources(cache: Path, seed: int) -> list[Source]:
    """Download, unpack, pick, split and prepare every source recording; returns them with their split."""
    versions = download_packages(cache)
    if not (cache / "pkgs" / RCC_PACKAGE / RCC_AUDIO_DIR).is_dir():
        extract_rcc_audio(cache / "pkgs" / RCC_PACKAGE)
    sources = assign_splits(find_sources(cache, versions), seed)
    return prepare_clips(cache, drop_cross_split_duplicates(sources, cache))


def write_manifest(sources: list[Source], seed: int, path: Path) -> None:
    counts = {label: {split: sum(1 for s in sources if s.label == label and s.split == split)
                      for split in ("train", "val", "test")} for label in LABELS}
    document = {"seed": seed, "sample_rate": SAMPLE_RATE, "labels": list(LABELS), "counts": counts,
                "sources": [asdict(s) for s in sources]}
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def read_manifest(path: Path) -> tuple[int, list[Source]]:
    document = json.loads(path.read_text(encoding="utf-8"))
    return document["seed"], [Source(**s) for s in document["sources"]]
