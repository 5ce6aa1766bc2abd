"""Real recordings for the starter model: which Debian packages, which files, which class, which split.

No sound-event data set can be downloaded here, but Debian ships real recordings inside packages: spoken
prompts and words in many voices and languages, music, ringtones and alarm clocks, animal and bird calls,
water sounds. `fetch_sources` downloads the packages with `apt-get download`, unpacks them with
`dpkg-deb -x` (no root needed), opens gcompris' Qt resource files with PySide6's QResource, and turns
every chosen file into a 32-kHz mono clip with leading and trailing silence trimmed.

Each recording belongs to a group: for speech the speaker (one language directory or voice of one package),
for everything else the recording, with its numbered takes (bird1_00, bird1_01) counted as one, and with
the files whose sound matches (one recording shipped by two games, or takes under different names; see
model.near_duplicates) counted as one. Splits are
drawn per class over groups, so a voice or a recording is never in two splits; a file whose bytes recur
elsewhere is kept only in the first split that has it. Every source's package, version and licence (from
the package's DEP-5 copyright file) goes into the manifest that ships beside the weights.
"""

import fnmatch
import hashlib
import json
import re
import shutil
import struct
import subprocess
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from htsat_live.model.audio import read_clip
from htsat_live.model.timebase import SAMPLE_RATE

TRIM_DB = 40.0  # trim leading/trailing audio quieter than the clip's peak frame minus this
TRIM_FRAME = 640  # 20 ms
SPEECH_FILES_PER_SPEAKER = 24

LABELS = ("Speech", "Music", "Bird", "Animal", "Alarm", "Water")

# package -> licence where the copyright file is not machine-readable (DEP-5)
LICENCE_OVERRIDES = {"asterisk-moh-opsound-wav": "CC-BY-SA-3.0", "pingus-data": "GPL-2+", "wesnoth-1.16-data": "GPL-2+",
                     "openttd-opensfx": "CC-BY-SA-3.0",  # its src/wav/* stanza, for the sounds of opensfx.cat
                     "plee-the-bear-data": "CC-BY-SA-3.0"}  # "most media files", says its copyright file

RCC_PACKAGE = "gcompris-qt-data"
RCC_DIR = "usr/share/gcompris-qt/rcc"
RCC_AUDIO_DIR = "rcc-audio"  # where the audio inside the .rcc files is written, inside the package dir
GCOMPRIS = f"{RCC_AUDIO_DIR}/gcompris/src"
OPENSFX_PACKAGE = "openttd-opensfx"
OPENSFX_CATALOGUE = "usr/share/games/openttd/baseset/opensfx/opensfx.cat"
OPENSFX_AUDIO_DIR = "cat-audio"  # where the sounds inside opensfx.cat are written, inside the package dir
SCORCHED3D = "usr/share/games/scorched3d/data/globalmods"
BERUSKY2 = "usr/share/games/berusky2/sound/sound"  # Czech names: voda water, kap drip, ptak bird, racek gull, krysa rat
QABCS = "usr/share/qabcs/abcs/all/noises"
SCRATCH = "usr/share/scratch/Media/Sounds"
ZERO_AD_PACKAGE = "0ad-data"
ZERO_AD_ARCHIVE = "usr/share/games/0ad/mods/public/public.zip"
ZIP_AUDIO_DIR = "zip-audio"  # where the audio inside 0 A.D.'s zip archive is written, inside the package dir
ZERO_AD = f"{ZIP_AUDIO_DIR}/audio"
TUXPAINT_STAMPS = "usr/share/tuxpaint/stamps"
THEMES = "usr/share/sounds"
HEDGEWARS = "usr/share/games/hedgewars/Data"
WIDELANDS = "usr/share/games/widelands/data"
MEGAGLEST = "usr/share/games/megaglest"
WESNOTH = "usr/share/games/wesnoth/1.16/data/core/sounds"
MINETEST = "usr/share/games/minetest/games/minetest_game/mods"
SUPERTUXKART = "usr/share/games/supertuxkart/data"
REDECLIPSE = "usr/share/games/redeclipse/data/sounds"


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
    # 0 A.D.: acted phrases in Ancient Greek, Latin, Meroitic and Old Persian; one actor per language and gender
    Rule("Speech", ZERO_AD_PACKAGE, rf"{ZERO_AD}/voice/(?P<group>(greek|latin|napatan|persian)/civ/civ_(male|female))_[^/]+\.ogg"),
    Rule("Speech", "asterisk-prompt-it-menardi-wav", r"usr/share/asterisk/sounds/(?P<group>it_IT_f_Menardi)/[^/]+\.wav"),
    # letters and words of KDE's letter-learning game, one speaker per language; German is left out for
    # scripts/unseen_sources.py
    Rule("Speech", "klettres-data", r"usr/share/klettres/(?P<group>(?!de/)[a-z]{2,3}(_[A-Z]{2})?)/(alpha|syllab)/[^/]+\.ogg"),
    # mahjong calls; a voice name (male1 ...) counts as one speaker in English and German alike
    Rule("Speech", "kajongg", r"usr/share/kajongg/voices/(de/)?(?P<group>(fe)?male[0-9])/[^/]+\.ogg"),
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
    Rule("Bird", OPENSFX_PACKAGE, rf"{OPENSFX_AUDIO_DIR}/(66|72)_tropical_bird_[12]\.wav"),
    Rule("Bird", "supertuxkart-data", rf"{SUPERTUXKART}/sfx/(?P<group>exotic-birds(_2)?)\.ogg"),  # two recordings
    Rule("Bird", ZERO_AD_PACKAGE, rf"{ZERO_AD}/actor/fauna/animal/(chicken_1[0-3]|flamingo_10|peacock_call_01)\.ogg"),
    # day_temperate_gen_03: the longest of seven cuts and versions of one birdsong recording, the only one taken
    Rule("Bird", ZERO_AD_PACKAGE, rf"{ZERO_AD}/ambient/dayscape/(day_temperate_gen_03|day_tropical_1[01])\.ogg"),
    Rule("Bird", "scorched3d-data", rf"{SCORCHED3D}/(none/data/wav/misc/(birds[12]|birdchirp[1-6]|gull[1245])|apoc/data/wav/misc/rooster)\.wav"),
    Rule("Bird", "berusky2-data", rf"{BERUSKY2}/(Crow[123]|ptak([6-9]|10)|racek[123]|les1)\.wav"),
    Rule("Bird", "qabcs-data", rf"{QABCS}/(albatross|bird|booby|crow|duck|eagle-owl|emu|flamingo|goose|guinea_fowl|heron|iora|owl|"
                               r"pelican|pheasant|quail|quetzal|rooster|sparrow|stork|vulture|wood_grouse)\.ogg"),
    Rule("Bird", "scratch", rf"{SCRATCH}/Animal/(Bird|Duck|Goose|Owl|Rooster)\.wav"),
    Rule("Bird", "pekka-kana-2-data", r"usr/share/games/pekka-kana-2/data/sprites/(hen|chick|bird|(?P<group>crow)(_ko)?)\.wav"),
    Rule("Bird", "micropolis-data", r"usr/share/games/micropolis/res/sounds/quack\.wav"),
    Rule("Bird", "gnome-shell-pomodoro-data", r"usr/share/gnome-pomodoro/sounds/birds\.ogg"),
    # other animals: mammals (dogs, cats, farm and wild animals), frogs, insects
    # (dromedary.ogg is camel.ogg's recording, processed)
    Rule("Animal", "tuxpaint-stamps-default", rf"{TUXPAINT_STAMPS}/animals/(mammals|marsupials|amphibians|insects)/([a-z]+/)?(?![a-z_0-9-]*_desc|dromedary)[a-z_0-9]+\.ogg"),
    Rule("Animal", "tuxpaint-stamps-default", rf"{TUXPAINT_STAMPS}/seasonal/halloween/blackcat\.ogg"),
    Rule("Animal", RCC_PACKAGE, rf"{GCOMPRIS}/activities/explore_farm_animals/resource/animals/(cat|dog|cow|horse|pig|sheep)\.ogg"),
    Rule("Animal", RCC_PACKAGE, rf"{GCOMPRIS}/activities/memory-sound/resource/LRBark_[0-9]_LA_cut\.ogg"),
    # (megaglest's tileset wolf.wav is left out: its howl matches widelands' wolf recording)
    Rule("Animal", "widelands-data", rf"{WIDELANDS}/sound/animals/(boar|frog|(coyote|crickets[0-9]|moose|stag|wolf)_[0-9]+)\.ogg"),
    Rule("Animal", "widelands-data", rf"{WIDELANDS}/sound/farm/(farm_animal|horse|sheep)_[0-9]+\.ogg"),
    Rule("Animal", "megaglest-data", rf"{MEGAGLEST}/techs/megapack/commondata/sounds/(cow|pig)_(ack|select)[0-9]\.wav"),
    Rule("Animal", "megaglest-data", rf"{MEGAGLEST}/techs/megapack/factions/persian/units/sheep/sounds/sheep[0-9]+\.wav"),
    Rule("Animal", "megaglest-data", rf"{MEGAGLEST}/techs/megapack/factions/indian/units/beehive/sounds/bee[0-9]\.wav"),
    Rule("Animal", "megaglest-data", rf"{MEGAGLEST}/tilesets/pine_peat/sounds/mudchute_cow_1\.ogg"),
    Rule("Animal", "simutrans-pak64", r"usr/share/games/simutrans/pak/sound/horse\.wav"),
    Rule("Animal", "wesnoth-1.16-data", rf"{WESNOTH}/wolf-growl-[0-9]\.ogg"),
    Rule("Animal", OPENSFX_PACKAGE, rf"{OPENSFX_AUDIO_DIR}/(36_sheep|37_cow|38_horse|68_tropical_monkeys)\.wav"),
    Rule("Animal", "supertuxkart-data", rf"{SUPERTUXKART}/tracks/(black_forest/cow|scotland/sheep)\.ogg"),
    Rule("Animal", "redeclipse-data", rf"{REDECLIPSE}/ambience/(cycadas|nightcrickets)\.ogg"),
    # 0 A.D. animals; the files of one recording session (elephant, horse, lion, camel, dog) share a group, and
    # duplicates under other names (death_horse_12/13, pig_12, pig_squeal_move) are left out
    Rule("Animal", ZERO_AD_PACKAGE, rf"{ZERO_AD}/actor/fauna/animal/(cattle_0[1-7]|pig_10|pig_death|sheep_1[01])\.ogg"),
    Rule("Animal", ZERO_AD_PACKAGE, rf"{ZERO_AD}/actor/fauna/death/goat_1[0-7]\.ogg"),
    Rule("Animal", ZERO_AD_PACKAGE, rf"{ZERO_AD}/actor/fauna/animal/(?P<group>elephant)_(attack[123]|death[12]|order[12]|select[12]|trained1)\.ogg"),
    Rule("Animal", ZERO_AD_PACKAGE, rf"{ZERO_AD}/actor/fauna/animal/(?P<group>horse)_(11|attack[123]|death[12]|idle[123]|select[123])\.ogg"),
    Rule("Animal", ZERO_AD_PACKAGE, rf"{ZERO_AD}/actor/fauna/death/death_(?P<group>horse)_1[01]\.ogg"),
    Rule("Animal", ZERO_AD_PACKAGE, rf"{ZERO_AD}/actor/fauna/animal/(?P<group>lion)_(attack[12]|select1)\.ogg"),
    Rule("Animal", ZERO_AD_PACKAGE, rf"{ZERO_AD}/actor/fauna/(movement|death)/(death_)?(?P<group>camel)_10\.ogg"),
    Rule("Animal", ZERO_AD_PACKAGE, rf"{ZERO_AD}/voice/global/civ_(?P<group>dog)_(bark|move)\.ogg"),
    Rule("Animal", "scorched3d-data", rf"{SCORCHED3D}/(none/data/wav/misc/(frogs|wolf|bats[123])|apoc/data/wav/misc/(dog[23]?|cows|moo|sheep))\.wav"),
    Rule("Animal", "berusky2-data", rf"{BERUSKY2}/(frog[1-5]|Krysa[123]|swamp1)\.wav"),
    Rule("Animal", "qabcs-data", rf"{QABCS}/(bear|calf|cat|chimpanzee|chinchilla|cow|deer|dog|dolphin|elephant|ferret|foal|frog|"
                                 r"giant_panda|grasshopper|hamster|horse|hyena|jaguar|lion|little_monkey|lynx|moose|mouse|otter|"
                                 r"pig|raccoon|rhinoceros|sheep|squirrel|tiger|wallaby|whale|wolf|yak|zebra)\.ogg"),
    Rule("Animal", "scratch", rf"{SCRATCH}/Animal/(Cat\.mp3|(?P<group>Cricket)s?\.wav|(Dog[12]|Horse|Kitten|Meow|WolfHowl)\.wav|SeaLion\.mp3)"),
    Rule("Animal", "plee-the-bear-data", r"usr/share/games/plee-the-bear/sound/forest/frog/(?P<group>croak)-(idle|jump)\.ogg"),
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
    # opensfx horns, whistles and a level-crossing bell; 04 and 05 are cuts of one steam-train horn recording
    Rule("Alarm", OPENSFX_PACKAGE, rf"{OPENSFX_AUDIO_DIR}/(03_factory_whistle|06_ship_horn|07_ferry_horn|"
                                   r"10_diesel_electric_train_station_departure|14_level_crossing|35_modern_car_horn)\.wav"),
    Rule("Alarm", OPENSFX_PACKAGE, rf"{OPENSFX_AUDIO_DIR}/0[45]_(?P<group>steam)_[a-z_]+\.wav"),
    Rule("Alarm", "supertuxkart-data", rf"{SUPERTUXKART}/sfx/horn\.ogg"),
    Rule("Alarm", "scorched3d-data", rf"{SCORCHED3D}/apoc/data/wav/misc/(carhorn[1-6]|policecar|firetruck)\.wav"),
    Rule("Alarm", "berusky2-data", rf"{BERUSKY2}/parnik3\.wav"),  # a steamboat horn
    Rule("Alarm", "qabcs-data", rf"{QABCS}/whistle\.ogg"),
    Rule("Alarm", "micropolis-data", r"usr/share/games/micropolis/res/sounds/(siren|(?P<group>honkhonk)-(low|med|high))\.wav"),
    Rule("Alarm", "gnome-shell-pomodoro-data", r"usr/share/gnome-pomodoro/sounds/loud-bell\.ogg"),
    Rule("Alarm", "linphone-common", r"usr/share/sounds/linphone/rings/oldphone-mono\.wav"),
    Rule("Alarm", "etw-data", r"usr/share/games/etw/snd/(?P<group>fischio)(corto|lungo)\.wav"),  # a referee's whistle
    Rule("Alarm", "tuxmath-data", r"usr/share/tuxmath/sounds/alarm\.wav"),
    # telephone signals of two VoIP phones (AudioSet's Alarm > Telephone: ringing, ringback, busy signal)
    Rule("Alarm", "baresip-core", r"usr/share/baresip/(ring|ringback|busy|callwaiting)\.wav"),
    Rule("Alarm", "twinkle-common", r"usr/share/twinkle/ring(tone|back)\.wav"),
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
    Rule("Water", "supertuxkart-data", rf"{SUPERTUXKART}/sfx/(rain|river_loop|waterfall_loop_2|splash)\.ogg"),
    Rule("Water", "redeclipse-data", rf"{REDECLIPSE}/ambience/(creek|river|water|cavedrip)\.ogg"),
    # seven waterfall files cut from three recordings (not told apart): one group; waterfall1 repeats waterfall
    Rule("Water", "redeclipse-data", rf"{REDECLIPSE}/ambience/(?P<group>waterfall)(2|3|_deep|_huge|_indoor|_medium)?\.ogg"),
    Rule("Water", "redeclipse-data", rf"{REDECLIPSE}/ambience/morph/(storm)?(?P<group>rain)\.ogg"),
    Rule("Water", "redeclipse-data", rf"{REDECLIPSE}/sfx/(?P<group>splash)(in|out)[23]?\.ogg"),  # one session
    Rule("Water", ZERO_AD_PACKAGE, rf"{ZERO_AD}/ambient/water/(river_(fast|med|raging|slow)_21|waterfall_31|wave_21|wavecrash_21|waverocky_21)\.ogg"),
    Rule("Water", ZERO_AD_PACKAGE, rf"{ZERO_AD}/ambient/weather/rain_1[12]\.ogg"),
    Rule("Water", "scorched3d-data", rf"{SCORCHED3D}/none/data/wav/misc/(rain|splash|oceanwaves)\.wav"),
    Rule("Water", "berusky2-data", rf"{BERUSKY2}/(Voda[12]|Kap[123]|Zblunk[1-4]|vynor[123])\.wav"),
    Rule("Water", "berusky2-data", rf"{BERUSKY2}/(?P<group>[Bb]ubl)(iny)?[123]\.wav"),  # one bubbling recording
    Rule("Water", "qabcs-data", rf"{QABCS}/(umbrella|fish)\.ogg"),  # rain on an umbrella, a fish splashing
    Rule("Water", "scratch", rf"{SCRATCH}/Effects/(Bubbles\.wav|Plunge\.wav|Ripples\.wav|WaterDrop\.mp3|WaterRunning\.mp3)"),
    Rule("Water", "plee-the-bear-data", r"usr/share/games/plee-the-bear/sound/(weather/rain|splash)\.ogg"),
    Rule("Water", "caveexpress-data", r"usr/share/games/caveexpress/sounds/(water-(impact|leave|rising)|tile-waterfall|npc-cave-swimming)\.ogg"),
    Rule("Water", "kolf", r"usr/share/kolf/sounds/puddle\.wav"),
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
        if not target.is_dir():  # unpacked beside, then renamed: an interrupted unpack is redone, not taken as done
            partial = unpacked / f"{package}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(partial)], check=True)
            partial.rename(target)
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


def extract_opensfx_audio(package_dir: Path) -> int:
    """Write the sounds of OpenTTD's opensfx.cat to package_dir/cat-audio/NN_<title>.wav; returns how many.

    The catalogue starts with a table of (offset, size) little-endian uint32 pairs, one per sound (the
    first offset, without its top bit, is the table's length); each entry is a length-prefixed text (the
    sound's title in quotes, then its credit) followed by a RIFF WAVE file, or by nothing for the unused slots."""
    data = (package_dir / OPENSFX_CATALOGUE).read_bytes()
    count = (struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF) // 8
    target = package_dir / OPENSFX_AUDIO_DIR
    target.mkdir(parents=True, exist_ok=True)
    written = 0
    for index in range(count):
        offset, size = struct.unpack_from("<II", data, 8 * index)
        offset &= 0x7FFFFFFF
        text = data[offset + 1: offset + 1 + data[offset]].rstrip(b"\0").decode("latin-1")
        title = re.match(r'\s*"([^"]*)"', text)
        slug = re.sub(r"[^a-z0-9]+", "_", (title.group(1) if title else text).lower()).strip("_")[:50].strip("_")
        entry = data[offset + 1 + data[offset]: offset + size]
        riff = entry.find(b"RIFF")
        if riff >= 0:
            (target / f"{index:02d}_{slug}.wav").write_bytes(entry[riff:])
            written += 1
    return written


def extract_zip_audio(package_dir: Path) -> int:
    """Write the .ogg files under audio/ in 0 A.D.'s public.zip to package_dir/zip-audio/; returns how many."""
    import zipfile

    count = 0
    with zipfile.ZipFile(package_dir / ZERO_AD_ARCHIVE) as archive:
        for name in archive.namelist():
            if name.startswith("audio/") and name.endswith(".ogg"):
                archive.extract(name, package_dir / ZIP_AUDIO_DIR)
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


def assign_splits(sources: list[Source], seed: int, test_share: float = 0.2, val_share: float = 0.15) -> list[Source]:
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


def join_matching_recordings(sources: list[Source], cache: Path) -> list[Source]:
    """One group for the files of one recording that carry different names or ship in different packages
    (model.near_duplicates), per class except Speech and Music (grouped by speaker and by track)."""
    from htsat_live.training.near_duplicates import fingerprint, matching_groups

    joined = []
    for label in LABELS:
        members = [s for s in sources if s.label == label]
        if label in ("Speech", "Music"):
            joined.extend(members)
            continue
        fingerprints = {s.id: fingerprint(sf.read(str(cache / "clips" / s.clip_name), dtype="float32")[0]) for s in members}
        group_of = matching_groups(fingerprints, {s.id: s.group for s in members})
        joined.extend(replace(s, group=group_of[s.group]) for s in members)
    return joined


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
    """A file as 32-kHz mono float32 (`htsat_live.model.read_clip`), with leading and trailing silence trimmed."""
    return trim_silence(read_clip(path))


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
    if not (cache / "pkgs" / OPENSFX_PACKAGE / OPENSFX_AUDIO_DIR).is_dir():
        extract_opensfx_audio(cache / "pkgs" / OPENSFX_PACKAGE)
    if not (cache / "pkgs" / ZERO_AD_PACKAGE / ZIP_AUDIO_DIR).is_dir():
        extract_zip_audio(cache / "pkgs" / ZERO_AD_PACKAGE)
    sources = join_matching_recordings(prepare_clips(cache, find_sources(cache, versions)), cache)
    return drop_cross_split_duplicates(assign_splits(sources, seed), cache)


def write_manifest(sources: list[Source], seed: int, path: Path) -> None:
    counts = {label: {split: sum(1 for s in sources if s.label == label and s.split == split)
                      for split in ("train", "val", "test")} for label in LABELS}
    document = {"seed": seed, "sample_rate": SAMPLE_RATE, "labels": list(LABELS), "counts": counts,
                "sources": [asdict(s) for s in sources]}
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def read_manifest(path: Path) -> tuple[int, list[Source]]:
    document = json.loads(path.read_text(encoding="utf-8"))
    return document["seed"], [Source(**s) for s in document["sources"]]
