"""Real recordings for the starter model: which Debian packages, which files, which class, which split.

No sound-event data set can be downloaded here, but Debian ships real recordings inside packages: spoken
prompts and words in many voices and languages, music, ringtones and alarm clocks, animal and bird calls,
water sounds. `fetch_sources` downloads the packages with `apt-get download`, unpacks them with
`dpkg-deb -x` (no root needed), opens gcompris' Qt resource files with PySide6's QResource, and turns
every chosen file into a 32-kHz mono clip with leading and trailing silence trimmed. Which files of which
package hold which class is data, not code: the rules of source_rules.toml beside this module.

Each recording belongs to a group: for speech the speaker (one language directory or voice of one package),
for everything else the recording, with its numbered takes (bird1_00, bird1_01) counted as one, and with
the files whose sound matches (one recording shipped by two games, or takes under different names; see
model.near_duplicates) counted as one. Splits are
drawn per class over groups, so a voice or a recording is never in two splits; a file whose bytes recur
elsewhere is kept only in the first split that has it. Every source's package, version and licence (from
the package's DEP-5 copyright file) goes into the manifest that ships beside the weights.
"""

import fnmatch
import functools
import hashlib
import json
import re
import shutil
import struct
import subprocess
import tomllib
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
LICENCE_OVERRIDES = {
    "asterisk-moh-opsound-wav": "CC-BY-SA-3.0",
    "pingus-data": "GPL-2+",
    "wesnoth-1.16-data": "GPL-2+",
    "openttd-opensfx": "CC-BY-SA-3.0",  # its src/wav/* stanza, for the sounds of opensfx.cat
    "plee-the-bear-data": "CC-BY-SA-3.0",
}  # "most media files", says its copyright file

RCC_PACKAGE = "gcompris-qt-data"
RCC_DIR = "usr/share/gcompris-qt/rcc"
RCC_AUDIO_DIR = "rcc-audio"  # where the audio inside the .rcc files is written, inside the package dir
OPENSFX_PACKAGE = "openttd-opensfx"
OPENSFX_CATALOGUE = "usr/share/games/openttd/baseset/opensfx/opensfx.cat"
OPENSFX_AUDIO_DIR = "cat-audio"  # where the sounds inside opensfx.cat are written, inside the package dir
ZERO_AD_PACKAGE = "0ad-data"
ZERO_AD_ARCHIVE = "usr/share/games/0ad/mods/public/public.zip"
ZIP_AUDIO_DIR = "zip-audio"  # where the audio inside 0 A.D.'s zip archive is written, inside the package dir
RULES_FILE = Path(__file__).resolve().parent / "source_rules.toml"  # data, not code: the curated table of files


@dataclass(frozen=True)
class Rule:
    """Files of one package that hold one class (one entry of source_rules.toml). `pattern` is a regular
    expression matched against the path inside the unpacked package; its named group `group`, when present,
    names the speaker."""

    label: str
    package: str
    pattern: str


def read_rules(path: Path = RULES_FILE) -> tuple[Rule, ...]:
    """The rules of a rules file, in file order; an entry with a missing or unknown field raises TypeError."""
    with open(path, "rb") as handle:
        return tuple(Rule(**entry) for entry in tomllib.load(handle)["rules"])


@functools.cache
def source_rules() -> tuple[Rule, ...]:
    """The rules of source_rules.toml, read on first use."""
    return read_rules()


def source_packages() -> tuple[str, ...]:
    """The packages that the rules take files from, sorted by name."""
    return tuple(sorted({rule.package for rule in source_rules()}))


@dataclass(frozen=True)
class SourceRecording:
    """A recording that a rule picks, with its class, package, licence, split group and split."""

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


def download_packages(cache: Path, packages: tuple[str, ...]) -> dict[str, str]:
    """apt-get download + dpkg-deb -x every package into cache/pkgs/<name>; returns package -> version."""
    debs, unpacked = cache / "debs", cache / "pkgs"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not list(debs.glob(f"{p}_*.deb"))]
    if missing:
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)
    versions = {}
    for package in packages:
        deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
        versions[package] = subprocess.run(
            ["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True
        ).stdout.strip()
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
        text = data[offset + 1 : offset + 1 + data[offset]].rstrip(b"\0").decode("latin-1")
        title = re.match(r'\s*"([^"]*)"', text)
        slug = re.sub(r"[^a-z0-9]+", "_", (title.group(1) if title else text).lower()).strip("_")[:50].strip("_")
        entry = data[offset + 1 + data[offset] : offset + size]
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
    found = f"see /usr/share/doc/{package}/copyright"
    for patterns, licence in stanzas:
        if any(p != "debian/*" and fnmatch.fnmatch(path, p if p == "*" else "*" + p.lstrip("./")) for p in patterns):
            found = licence
    return found


def find_sources(cache: Path, versions: dict[str, str]) -> list[SourceRecording]:
    """Every file that a rule picks, with its class, speaker group, version and licence (no split yet)."""
    sources = []
    for rule in source_rules():
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
            sources.append(
                SourceRecording(
                    f"{rule.package}:{relative}",
                    rule.label,
                    rule.package,
                    versions[rule.package],
                    licence_of(rule.package, relative, stanzas),
                    group,
                )
            )
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


def assign_splits(
    sources: list[SourceRecording], seed: int, test_share: float = 0.2, val_share: float = 0.15
) -> list[SourceRecording]:
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
    return [SourceRecording(**{**asdict(s), "split": split_of[(s.label, s.group)]}) for s in sources]


def join_matching_recordings(sources: list[SourceRecording], cache: Path) -> list[SourceRecording]:
    """One group for the files of one recording that carry different names or ship in different packages
    (model.near_duplicates), per class except Speech and Music (grouped by speaker and by track)."""
    from htsat_live.training.near_duplicates import fingerprint, matching_groups

    joined = []
    for label in LABELS:
        members = [s for s in sources if s.label == label]
        if label in ("Speech", "Music"):
            joined.extend(members)
            continue
        fingerprints = {
            s.id: fingerprint(sf.read(str(cache / "clips" / s.clip_name), dtype="float32")[0]) for s in members
        }
        group_of = matching_groups(fingerprints, {s.id: s.group for s in members})
        joined.extend(replace(s, group=group_of[s.group]) for s in members)
    return joined


def drop_cross_split_duplicates(sources: list[SourceRecording], cache: Path) -> list[SourceRecording]:
    """Keep a recording whose bytes sit in several places (ktuberling's Serbian script variants share their
    files) only in the first split of train, val, test that holds it, so a test file is never a training file."""
    order = {"train": 0, "val": 1, "test": 2}
    digests = {
        s.id: hashlib.sha1((cache / "pkgs" / s.package / s.id.split(":", 1)[1]).read_bytes()).hexdigest()
        for s in sources
    }
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
    return wave[loud[0] * TRIM_FRAME : (loud[-1] + 1) * TRIM_FRAME]


def prepare_clips(cache: Path, sources: list[SourceRecording]) -> list[SourceRecording]:
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
        kept.append(SourceRecording(**{**asdict(source), "seconds": round(sf.info(str(target)).duration, 3)}))
    return kept


def fetch_sources(cache: Path, seed: int) -> list[SourceRecording]:
    """Download, unpack, pick, split and prepare every source recording; returns them with their split."""
    versions = download_packages(cache, source_packages())
    if not (cache / "pkgs" / RCC_PACKAGE / RCC_AUDIO_DIR).is_dir():
        extract_rcc_audio(cache / "pkgs" / RCC_PACKAGE)
    if not (cache / "pkgs" / OPENSFX_PACKAGE / OPENSFX_AUDIO_DIR).is_dir():
        extract_opensfx_audio(cache / "pkgs" / OPENSFX_PACKAGE)
    if not (cache / "pkgs" / ZERO_AD_PACKAGE / ZIP_AUDIO_DIR).is_dir():
        extract_zip_audio(cache / "pkgs" / ZERO_AD_PACKAGE)
    sources = join_matching_recordings(prepare_clips(cache, find_sources(cache, versions)), cache)
    return drop_cross_split_duplicates(assign_splits(sources, seed), cache)


def write_manifest(sources: list[SourceRecording], seed: int, path: Path) -> None:
    counts = {
        label: {
            split: sum(1 for s in sources if s.label == label and s.split == split)
            for split in ("train", "val", "test")
        }
        for label in LABELS
    }
    document = {
        "seed": seed,
        "sample_rate": SAMPLE_RATE,
        "labels": list(LABELS),
        "counts": counts,
        "sources": [asdict(s) for s in sources],
    }
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def read_manifest(path: Path) -> tuple[int, list[SourceRecording]]:
    document = json.loads(path.read_text(encoding="utf-8"))
    return document["seed"], [SourceRecording(**s) for s in document["sources"]]
